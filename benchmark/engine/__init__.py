"""The executor that hands a matrix's work units to workers: today a work queue in an SQL
database (workqueue.py) that many worker processes or machines claim units from. Kept free of torch."""
