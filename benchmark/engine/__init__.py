"""The executor that hands a matrix's work units to processes: Ray (ray_executor.py) for `bench
--workers N` and `--cluster`: tasks with declared resources, Ray dependencies for their order and
retries on node death. Kept free of torch."""
