"""Which seeds train what. Evaluation seeds come from the profile (the matrix's `seeds`);
tuning trials train with seeds from TUNING_SEED_BASE up (slot k: TUNING_SEED_BASE + k), and
planning refuses a profile whose seeds reach that range, so no reported number shares a seed
with the tuning that chose its hyperparameters."""

TUNING_SEED_BASE = 1_000_000


def tuning_seed(slot: int) -> int:
    return TUNING_SEED_BASE + slot
