"""Running the study: profiles, the notebook runner with content-keyed rebuilds, sweeps on Dask, the
preflight check of a data root, and the command line."""
