"""The matrix axis ``finetune``: how the pretrained encoders are used (benchmark/features/finetune.py).
"frozen" reads cached features (the default); "last_block" trains the last block of each encoder that
can be fine-tuned; "full" trains the whole encoder on raw inputs. Each mode a profile lists gives a
variant of every strategy ("concat", "concat@last_block"), as the missing-input axis does, so the
report compares them cell by cell with paired tests (benchmark/reporting/finetune_section.py).

The frozen variant keeps its name, fixed hyperparameters and identity: results recorded before the
axis existed stay valid. A fine-tuned variant's identity adds the mode (a fixed hyperparameter, in
the cell hash and study name) and :func:`finetune_fingerprint`: the versions of what its modalities
cache and of the fine-tuning code."""

from __future__ import annotations

from typing import Any

from benchmark.run.identity import digest
from benchmark.vocabulary import FINETUNE, FINETUNE_FROZEN, FINETUNE_MODES, finetune_of, finetune_suffix

EXPECTED = f"a list of fine-tuning modes, each one of {list(FINETUNE_MODES)} (default [frozen])"


def check_finetune(values: Any) -> tuple[str, ...]:
    """The modes of a profile or flag: a non-empty list of known names, no repeats."""
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"expected {EXPECTED}, got {values!r}")
    for value in values:
        if value not in FINETUNE_MODES:
            raise ValueError(f"expected each of {list(FINETUNE_MODES)}, got {value!r}")
    if len(set(values)) < len(values):
        raise ValueError(f"expected each mode once, got {list(values)}")
    return tuple(values)


def parse_finetune(text: str) -> tuple[str, ...]:
    """``--finetune``: comma-separated modes, e.g. ``frozen,last_block``."""
    parts = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not part for part in parts):
        raise ValueError(f"expected comma-separated modes from {list(FINETUNE_MODES)}, e.g. frozen,last_block; "
                         f"got {text!r}")
    return check_finetune(parts)


def finetunable_modalities(card) -> list[str]:
    """The card's modalities whose encoder some fine-tuning mode replaces (EfficientNet-Lite0, MiniLM
    and hf-text models); an unusable encoder counts as frozen (its error comes with the features)."""
    from benchmark.features.catalog import get_encoder  # torch: imported when a plan is built, not to check a profile
    from benchmark.features.finetune import can_finetune

    names = []
    for spec in card.modalities:
        try:
            encoder = get_encoder(spec.encoder, **{k: v for k, v in spec.options.items() if k != "missing"})
        except Exception:  # noqa: BLE001 - reported where the features are built
            continue
        if can_finetune(encoder):
            names.append(spec.name)
    return sorted(names)


def finetune_modes(modes: tuple[str, ...], card) -> tuple[str, ...]:
    """The modes a dataset's cells run: the profile's, less the fine-tuned ones where no encoder of
    the card can be fine-tuned (they would train the frozen model again under another name)."""
    if any(mode != FINETUNE_FROZEN for mode in modes) and not finetunable_modalities(card):
        return tuple(mode for mode in modes if mode == FINETUNE_FROZEN)
    return tuple(modes)


def finetune_variants(variant: str, fixed: dict, modes: tuple[str, ...]) -> list[tuple[str, dict]]:
    """(variant, fixed hyperparameters) of a variant for each mode: "frozen" keeps it as it is (its
    cells keep their hash and study); "last_block" gives "<variant>@last_block" with
    ``finetune: last_block``."""
    return [(variant, fixed) if mode == FINETUNE_FROZEN else
            (f"{variant}{finetune_suffix(mode)}", {**fixed, FINETUNE: mode}) for mode in modes]


def finetune_fingerprint(card, mode: str) -> str:
    """What a fine-tuned cell's inputs add to the frozen ones: the mode, the fine-tuning code version
    and the version of what each fine-tuned modality caches (its encoder's version plus the cut)."""
    from benchmark.features.catalog import get_encoder
    from benchmark.features.finetune import FINETUNE_CODE_VERSION, finetuned_input

    versions = {}
    for spec in sorted(card.modalities, key=lambda m: m.name):
        try:
            encoder = get_encoder(spec.encoder, **{k: v for k, v in spec.options.items() if k != "missing"})
        except Exception:  # noqa: BLE001 - reported where the features are built
            continue
        replaced = finetuned_input(encoder, mode)
        if replaced is not None:
            versions[spec.name] = replaced.version
    return digest({"finetune": mode, "code": FINETUNE_CODE_VERSION, "inputs": versions})


def finetuned_inputs_fingerprint(fingerprint: str, card, mode: str) -> str:
    """A cell's inputs fingerprint (planning.input_fingerprint) for fine-tuning ``mode``: unchanged
    for "frozen", else combined with :func:`finetune_fingerprint`."""
    if mode == FINETUNE_FROZEN:
        return fingerprint
    return digest({"inputs": fingerprint, "finetune": finetune_fingerprint(card, mode)})


def feature_key(dataset: str, mode: str) -> str:
    """Which FeatureSet a cell trains on: the dataset's own name when frozen (as before the axis),
    "<dataset>@<mode>" when fine-tuned (benchmark/run/unit_runner.py, coordinator.prepare_data)."""
    return dataset + finetune_suffix(mode)


def modes_by_dataset(cells) -> dict[str, set[str]]:
    """Dataset -> the fine-tuning modes its cells use (whose features a bench prepares)."""
    modes: dict[str, set[str]] = {}
    for cell in cells:
        modes.setdefault(cell.dataset, set()).add(finetune_of(cell.fixed_hparams))
    return modes
