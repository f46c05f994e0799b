"""Running a matrix: profiles and config, its Plan (built once per command: cells, studies, units),
the worker, the coordinator behind `fusebench bench`, progress (`fusebench status`) and time
estimates (`bench --dry-run`).
The developer benchmarks behind `fusebench perf` live in benchmark/perf/."""
