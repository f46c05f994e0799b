"""Developer benchmarks behind `fusebench perf` (figures printed for a person, never timed unit
tests): the training loop's overhead, a bench run's phases, worker speed-up (commands.py), the
training budget (budget_check.py), scale (scale_check.py), protocol fidelity (fidelity.py) and
audio encoders (audio_probe.py). Nothing outside the CLI imports this package."""
