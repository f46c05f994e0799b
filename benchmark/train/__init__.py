"""Training: a model composed of trainable encoders and a strategy, batching, the one
training loop, evaluation, cost, Optuna tuning, and the per-cell protocol.

model: FusionModel and build_model; trainable_encoders: networks trained with the model;
batching: inputs and presence masks; loop: the training loop; device: CUDA calls that name
their device; evaluation; cost; tuning; results: Cell and RunResult; cell: one cell."""
