"""Shared stores that let many workers run one matrix: the retry policy, the SQL databases
(work queue, Optuna storage), MLflow tracking, and the results schema read by reporting.
Kept free of torch; ``schema`` is plain Python."""
