"""The stores many workers share, and how they are reached: the SQL databases behind the Optuna
storage, fusebench's matrix records and driver lock, and MLflow (URLs checked, secrets masked,
first-use locks), and the retry policy for a store outage. Used by engine/, tracking/, run/ and
train/'s tuning. Kept free of torch."""
