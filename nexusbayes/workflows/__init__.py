"""Many fits at once: resumable Dask jobs, batches, sensitivity sweeps, simulation-based calibration, sharing checks."""
