"""Which seeds train what. Evaluation seeds come from the profile (the matrix's `seeds`);
tuning trials train with seeds from TUNING_SEED_BASE up (slot k of draw d: TUNING_SEED_BASE +
TUNING_DRAW_STRIDE x d + k), and planning refuses a profile whose seeds reach that range, so no
reported number shares a seed with the tuning that chose its hyperparameters.

A *tuning draw* is one independent draw of the tuning randomness (the sampler's seeds and the
trials' training seeds). Every ordinary matrix uses draw 0; `fusebench perf fidelity --noise-floor`
runs the same protocol with draw 1 to show how far the luck of tuning alone moves the scores."""

import hashlib

TUNING_SEED_BASE = 1_000_000
TUNING_DRAW_STRIDE = 1_000  # seeds per draw: far more than any study's trial slots


def tuning_seed(slot: int, draw: int = 0) -> int:
    """The training seed of trial slot ``slot`` in tuning draw ``draw``."""
    return TUNING_SEED_BASE + TUNING_DRAW_STRIDE * draw + slot


def sampler_seed(tuning_key: str, slot: int, draw: int = 0) -> int:
    """The TPE sampler's seed for trial slot ``slot``. ``tuning_key`` names what is tuned (dataset,
    variant, tuning rate, fold: results.Cell.tuning_key), never the budget, the protocol or the
    inputs' fingerprint, so two protocols that tune the same thing sample the same first points
    (common random numbers): a fidelity comparison then measures the protocols rather than the
    luck of two unrelated draws. Each slot gets its own seed, so parallel slots sample different
    points and a re-run of a slot samples the same one."""
    key = f"{tuning_key}#{slot}" + (f"#draw{draw}" if draw else "")
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
