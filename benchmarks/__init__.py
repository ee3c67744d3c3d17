"""Speed and recovery measurements (run with ``python -m benchmarks``); not part of the test suite."""
