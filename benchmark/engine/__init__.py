"""The executor that hands a matrix's work units to processes: Ray (ray_executor.py) for `bench
--workers N` and `--cluster`, tasks with declared resources, Ray dependencies for their order and
retries on node death; and, until `fusebench worker` has a Ray replacement, the older work queue in an
SQL database (workqueue.py) that worker processes on any machine claim units from. Kept free of torch."""
