"""PyTensor modes for tests that evaluate a graph at a few points: no numba compile.

PyTensor's default mode compiles every graph with numba, about 40-150 CPU s per model graph on a cold cache (a
CI machine's), while these tests evaluate the graph once or a few times. The Python linker runs each operation's
NumPy implementation instead. :data:`PY_RUN` keeps the default rewrites (the numerical stabilisations the value
checks rely on); ``nexusbayes.model.predict.forward_mode`` (fast-compile rewrites) serves finiteness checks and
forward draws. The sampler's own compile (``nexusbayes.inference.nutpie_callbacks``) is numba's, and its tests use it;
so do the checks of each family against PyMC's distribution to a relative 1e-8
(``tests/model/test_family_definitions.py``, ``tests/model/test_kernels.py``): NumPy's implementations of some of
PyTensor's operations differ from numba's in the eighth digit.
"""

from pytensor.compile.mode import Mode

#: Python linker with PyTensor's default (fast_run) rewrites: the same graph as the default mode, run in NumPy.
PY_RUN = Mode(linker="py", optimizer="fast_run")
