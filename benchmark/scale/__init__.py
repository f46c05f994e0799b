"""Shared stores that let many workers run one matrix: the retry policy, the SQL databases
(work queue, Optuna storage) and MLflow tracking. Kept free of torch."""
