"""MLflow tracking: writing a matrix's runs (mlflow_runs.py) and serving the MLflow UI (ui.py).
Kept free of torch."""
