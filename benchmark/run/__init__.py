"""Running a matrix: profiles and config, planning its units, the worker, the coordinator
behind `fusebench bench`, progress (`fusebench status`), time estimates and `fusebench perf`."""
