"""Encode every modality of every split once (through the feature cache) into tensors."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from benchmark.data.cards import SPLITS, CardError, DatasetCard
from benchmark.data.loading import DataError, LoadedDataset, load_splits
from benchmark.data.splits import fold_indices
from benchmark.features import cache as feature_cache
from benchmark.features.adapted_clip import bind_adaptation
from benchmark.features.base import Encoded, Encoder, EncodingError, FrontEnd
from benchmark.features.catalog import get_encoder
from benchmark.features.columns import column_values
from benchmark.features.finetune import budget_front_ends, finetuned_input
from benchmark.features.token_budget import apply_token_budget
from benchmark.features.class_prompts import zero_shot_prompts
from benchmark.features.clip import ZeroShotPrompts
from benchmark.progress import progress_bar
from benchmark.vocabulary import FINETUNE_FROZEN, data_rows_metric

# Part of every cache key: entries written before features carried a presence vector
# (``present``, naturally missing modalities) are never reused.
FEATURES_FORMAT = 2


@dataclass
class SplitTensors:
    """One split as tensors. Modalities are keyed by name; iterate them in sorted order.

    Features keep the dtype they were cached in (fp16 features, bool masks), memory-mapped from
    the feature cache where they came from it; batches are converted to float32 on the training
    device (:func:`benchmark.train.batching.model_inputs`). The labels live on the training
    device; the features there too when they fit (:meth:`FeatureSet.splits_on`), else on the CPU."""

    pooled: dict[str, torch.Tensor]  # m -> (N, D_m), cached dtype (fp16)
    tokens: dict[str, torch.Tensor]  # m -> (N, T_m, D_m), cached dtype (fp16)
    token_mask: dict[str, torch.Tensor]  # m -> bool (N, T_m)
    # multiclass: int64 (N,) class ids; binary: float32 (N,) of 0/1; multilabel: float32 (N, L) of 0/1;
    # regression: float32 (N,)
    labels: torch.Tensor
    # bool (N, M), columns in sorted modality order: whether each row's modality is present in the
    # data itself (False: a null cell or a missing file; its features are zeros). Training's and
    # evaluation's presence masks are ANDed with it. None at construction: every modality present.
    available: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.available is None:
            self.available = torch.ones(len(self), len(self.pooled), dtype=torch.bool)  # (N, M)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device | str) -> "SplitTensors":
        """Every tensor on ``device``, in its own dtype (no conversion). Tensors already there
        are not copied: on the CPU this is the same memory (memory-mapped stays mapped)."""
        move = lambda d: {k: v.to(device) for k, v in d.items()}  # noqa: E731
        return SplitTensors(move(self.pooled), move(self.tokens), move(self.token_mask), self.labels.to(device),
                            self.available.to(device))

    def with_labels_on(self, device: torch.device | str) -> "SplitTensors":
        """The same features where they are, the labels on ``device`` (features too large for it)."""
        return SplitTensors(self.pooled, self.tokens, self.token_mask, self.labels.to(device), self.available.to(device))

    def feature_bytes(self) -> int:
        """Bytes of the features and masks (what moving them to a device costs)."""
        return sum(t.numel() * t.element_size() for d in (self.pooled, self.tokens, self.token_mask) for t in d.values())


# On CUDA a dataset's features are moved to the GPU once when they take at most this share of
# its free memory; the rest is left to the models, activations and optimiser state.
GPU_FEATURE_SHARE = 0.5


def place_splits(splits: dict[str, SplitTensors], device: torch.device | str,
                 share: float = GPU_FEATURE_SHARE) -> dict[str, SplitTensors]:
    """The splits for training on ``device``: on the CPU the very tensors (no copy); on a GPU,
    every split's features moved there when they fit in ``share`` of its free memory, else left
    on the CPU (moved batch by batch), with the labels on the GPU either way."""
    device = torch.device(device)
    if device.type == "cpu":
        return dict(splits)
    needed = sum(t.feature_bytes() for t in splits.values())
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        fits = needed <= share * free
    else:
        fits = True  # other accelerators: no free-memory query; move as before
    return {s: t.to(device) if fits else t.with_labels_on(device) for s, t in splits.items()}


@dataclass
class FeatureSet:
    dataset: str
    modalities: list[str]
    class_names: list[str]
    splits: dict[str, SplitTensors]
    encode_seconds: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    cache_bytes: int = 0
    encoders: dict[str, str] = field(default_factory=dict)
    # modality -> the trainable network in front of the strategy (benchmark/train/trainable_encoders.py);
    # the cached features of such a modality are that network's raw input (e.g. pixels).
    front_ends: dict[str, FrontEnd] = field(default_factory=dict)
    task: str = "multiclass"  # the card's task: multiclass | binary | multilabel | regression
    regression_loss: str = "mse"  # the card's regression_loss: "mse" or "l1"
    sign_accuracy: bool = False  # regression: the card asks for the accuracy of the sign (MOSI acc-2)
    # multiclass cards whose image modality uses a CLIP family (hf-clip, open_clip): the class-name prompt
    # embeddings of the zero-shot baseline (benchmark/features/class_prompts.py; scored by benchmark/train/zero_shot.py)
    zero_shot: ZeroShotPrompts | None = None
    # modality -> how the token budget pooled its tokens (benchmark/features/token_budget.py); {} when none was
    token_budget: dict[str, str] = field(default_factory=dict)
    # How the pretrained encoders are used (benchmark/features/finetune.py): "frozen" (cached features),
    # "last_block" or "full" (their modalities' front ends are the fine-tuned networks)
    finetune: str = FINETUNE_FROZEN
    # device -> the splits placed for it (splits_on): each dataset is held once per device
    _placed: dict[str, dict[str, SplitTensors]] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def output_dim(self) -> int:
        """Width of the model's output: multiclass C, binary 1, multilabel L, regression 1."""
        return self.num_classes if self.task in ("multiclass", "multilabel") else 1

    def data_row_counts(self, splits: dict[str, SplitTensors] | None = None) -> dict[str, int]:
        """Rows per split and combination of modalities present in the data, as metric names
        (``data_rows.<split>.<mods joined by ->``, vocabulary.data_rows_metric); combinations that
        occur in no row are left out. ``splits``: those a cell used (a k-fold fold's), else the card's."""
        counts = {}
        for split in SPLITS:
            available = (splits or self.splits)[split].available.cpu()  # (N, M)
            patterns, sizes = torch.unique(available, dim=0, return_counts=True)  # (K, M), (K,)
            for pattern, size in zip(patterns.tolist(), sizes.tolist()):
                mods = [m for m, there in zip(self.modalities, pattern) if there]
                if mods:
                    counts[data_rows_metric(split, mods)] = int(size)
        return counts

    def input_dims(self, tokens: bool = False) -> dict[str, int]:
        """Feature width per modality: of the pooled vectors, or of the tokens when ``tokens``."""
        source = self.splits["train"].tokens if tokens else self.splits["train"].pooled
        return {m: int(source[m].shape[-1]) for m in self.modalities}

    def splits_on(self, device: torch.device | str) -> dict[str, SplitTensors]:
        """The splits for training on ``device`` (:func:`place_splits`), placed on the first call
        and reused by every later one: a worker moves a dataset to its GPU once, not per unit."""
        key = str(torch.device(device))
        if key not in self._placed:
            self._placed[key] = place_splits(self.splits, device)
        return self._placed[key]


def build_features(card: DatasetCard, log=print, max_tokens: int | None = None,
                   finetune: str = FINETUNE_FROZEN) -> FeatureSet:
    """Load the card's splits and encode each (split, modality), using the cache. ``max_tokens``:
    the token budget of token strategies (benchmark/features/token_budget.py; None: every token).
    ``finetune``: "frozen", or a mode in which each pretrained encoder that can be fine-tuned is
    replaced by what that mode caches and a front end that trains (benchmark/features/finetune.py)."""
    started = time.perf_counter()
    loaded = load_splits(card)
    per_split = {s: {"pooled": {}, "tokens": {}, "token_mask": {}, "present": {}} for s in SPLITS}
    hits = misses = size = 0
    encoders = {}
    front_ends = {}
    for spec in sorted(card.modalities, key=lambda m: m.name):
        try:
            encoder = get_encoder(spec.encoder, **{k: v for k, v in spec.options.items() if k != "missing"})
        except KeyError as exc:
            raise DataError(f"dataset {card.name!r}, modality {spec.name!r}, {_column_phrase(spec)}: {exc}") from None
        except ValueError as exc:  # options the encoder refuses (e.g. tabular given 'column:')
            raise CardError(card.path, f"modalities.{spec.name}", f"encoder {spec.encoder!r}: {exc}") from None
        encoder = finetuned_input(encoder, finetune) or encoder  # frozen: the card's encoder itself
        encoder.base_dir = card.path.resolve().parent  # relative file paths in a column resolve against it
        encoders[spec.name] = f"{spec.encoder}@{encoder.version}"
        front_end = encoder.front_end()
        if front_end is not None:
            front_ends[spec.name] = front_end
        columns = spec.options.get("columns")
        _fit(loaded, spec, encoder, columns)
        bind_adaptation(encoder, loaded, spec, log)  # a CLIP adapted to the card's pairs (option adapt): its key
        for split in SPLITS:
            key = feature_cache.cache_key(
                revision=loaded.revision, split=split, column=columns or spec.column, encoder=spec.encoder,
                version=encoder.version, options=spec.options, state=encoder.state(), format=FEATURES_FORMAT,
            )
            entry = feature_cache.load_entry(key)
            if entry is not None and "present" not in entry:
                entry = None  # written without a presence vector: encode again
            if entry is None:
                misses += 1
                entry = _encode(loaded, spec, split, encoder, log)
                meta = {"dataset": card.name, "split": split, "modality": spec.name, "column": str(columns or spec.column),
                        "encoder": spec.encoder, "version": encoder.version}
                path = feature_cache.save_entry(key, entry, meta)
                size += path.stat().st_size
                entry = feature_cache.load_entry(key) or entry  # held memory-mapped, as a cache hit is
            else:
                hits += 1
                size += feature_cache.entry_path(key).stat().st_size
            per_split[split]["pooled"][spec.name] = entry["pooled"]
            per_split[split]["tokens"][spec.name] = entry["tokens"]
            per_split[split]["token_mask"][spec.name] = mask_as_bool(entry["mask"])
            per_split[split]["present"][spec.name] = mask_as_bool(entry["present"])
    for split in SPLITS:
        present = per_split[split].pop("present")
        per_split[split]["available"] = _available(card, split, present)
    budget = apply_token_budget(per_split, [m for m in card.modality_names if m not in front_ends], max_tokens)
    front_ends, in_model = budget_front_ends(front_ends, per_split, max_tokens)  # fine-tuned text: pooled in the model
    budget.update(in_model)
    for modality, what in budget.items():
        log(f"[{card.name}] token budget {max_tokens}: {modality} {what}")
    label_dtype = torch.long if card.task == "multiclass" else torch.float32
    splits = {
        s: SplitTensors(**per_split[s], labels=torch.tensor(loaded.splits[s][card.label], dtype=label_dtype))
        for s in SPLITS
    }
    seconds = time.perf_counter() - started
    log(f"[{card.name}] features ready in {seconds:.1f}s ({hits} cached, {misses} encoded, {size / 2**20:.1f} MiB on disk)")
    return FeatureSet(card.name, card.modality_names, loaded.class_names, splits, seconds, hits, misses, size, encoders,
                      front_ends, task=card.task, regression_loss=card.regression_loss, sign_accuracy=card.sign_accuracy,
                      zero_shot=zero_shot_prompts(loaded, log), token_budget=budget, finetune=finetune)


def _available(card: DatasetCard, split: str, present: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each row's present modalities, bool (N, M) in sorted modality order. A row with none at all
    is an error: the data gives the model nothing to predict from."""
    available = torch.stack([present[m].bool() for m in sorted(present)], dim=1)  # (N, M)
    empty = (~available.any(dim=1)).nonzero(as_tuple=True)[0].tolist()
    if empty:
        rows = ", ".join(map(str, empty[:10])) + (f" and {len(empty) - 10} more" if len(empty) > 10 else "")
        raise DataError(f"dataset {card.name!r}, split {split!r}: row {rows} has no modality present "
                        f"(every one of {sorted(present)} is null or missing); remove such rows ({card.path})")
    return available


def mask_as_bool(mask: torch.Tensor) -> torch.Tensor:
    """A cached 0/1 uint8 mask as bool, without copying it (same bytes, one per element)."""
    return mask.view(torch.bool) if mask.dtype == torch.uint8 else mask.bool()


def _column_phrase(spec) -> str:
    """How an error names a modality's column(s): a long ``columns:`` list by its size."""
    columns = spec.options.get("columns")
    if columns and len(columns) > 5:
        return f"columns {columns[:3]!r} and {len(columns) - 3} more"
    return f"column {spec.column!r}"


def _fit(loaded: LoadedDataset, spec, encoder: Encoder, columns) -> None:
    """Fit the encoder's preprocessing on the training split only: ``fit_columns`` for several
    columns, ``fit`` on the column's values for a one-column encoder that fits anything (e.g.
    ``vector``: its layout and ``standardize`` statistics). Errors name the dataset, column, row."""
    where = f"dataset {loaded.card.name!r}, split 'train', {_column_phrase(spec)} (modality {spec.name!r})"
    train, rows = loaded.splits["train"], []
    try:
        if columns:
            encoder.fit_columns(train, columns)
        elif type(encoder).fit is not Encoder.fit:
            values = column_values(loaded, train, spec, "train", None)
            rows = _present_rows(values, encoder, spec.options.get("missing") == "allowed")
            encoder.fit([values[i] for i in rows])  # absent rows (null, missing file) fit nothing
    except DataError:
        raise
    except EncodingError as exc:
        row = rows[exc.row] if 0 <= exc.row < len(rows) else exc.row  # the split's row, not the sub-list's
        raise DataError(f"{where}, row {row}: {exc.problem}") from None
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from None


def _encode(loaded: LoadedDataset, spec, split: str, encoder, log) -> dict[str, torch.Tensor]:
    """Encode one (split, modality). Rows whose value is absent (a null cell, an empty path, or a
    missing file where the card says ``missing: allowed``) are not encoded: their features are
    zeros (one valid zero token) and ``present`` is False there."""
    dataset = loaded.splits[split]
    columns = spec.options.get("columns")
    values = column_values(loaded, dataset, spec, split, columns)
    where = f"dataset {loaded.card.name!r}, split {split!r}, {_column_phrase(spec)} (modality {spec.name!r})"
    rows = list(range(len(values))) if columns else _present_rows(values, encoder, spec.options.get("missing") == "allowed")
    started = time.perf_counter()
    with progress_bar(f"encode {loaded.card.name}/{split}/{spec.name} ({spec.encoder})", total=len(values)) as advance:
        if not rows:
            raise DataError(f"{where}: every row is null or missing; the modality is absent from the whole split")
        try:
            if len(rows) < len(values):
                advance(len(values) - len(rows))
            encoded = encoder.encode([values[i] for i in rows] if len(rows) < len(values) else values, progress=advance)
        except EncodingError as exc:
            row = rows[exc.row] if 0 <= exc.row < len(rows) else exc.row  # the split's row, not the sub-list's
            raise DataError(f"{where}, row {row}: {exc.problem}") from None
    log(f"[{loaded.card.name}] encoded {split}/{spec.name}: {len(rows)} of {len(values)} rows present, "
        f"in {time.perf_counter() - started:.1f}s")
    encoded = _scatter(encoded, rows, len(values))
    return {"pooled": encoded.pooled.half(), "tokens": encoded.tokens.half(), "mask": encoded.mask.to(torch.uint8),
            "present": encoded.present.to(torch.uint8)}


def _present_rows(values: list, encoder, missing_allowed: bool) -> list[int]:
    """Indices of the rows whose value is there: not null or empty, and (``missing_allowed``)
    not a path to a file that does not exist. Without ``missing: allowed`` a missing file is left
    to the encoder, whose error names the row and the file."""
    rows = []
    for row, value in enumerate(values):
        if encoder.is_absent(value):
            continue
        if missing_allowed:
            path = encoder.referenced_file(value)
            if path is not None and not path.is_file():
                continue
        rows.append(row)
    return rows


def _scatter(encoded: Encoded, rows: list[int], n: int) -> Encoded:
    """Features of the encoded ``rows`` placed among ``n`` rows; the others zeros and absent."""
    if len(rows) == n:
        return encoded
    index = torch.tensor(rows, dtype=torch.long)  # (n_present,)
    pooled = encoded.pooled.new_zeros((n,) + tuple(encoded.pooled.shape[1:]))  # (N, D)
    tokens = encoded.tokens.new_zeros((n,) + tuple(encoded.tokens.shape[1:]))  # (N, T, D)
    mask = torch.zeros(n, encoded.mask.shape[1], dtype=torch.bool)  # (N, T)
    mask[:, 0] = True  # an absent row holds one valid zero token: no strategy meets a row without keys
    present = torch.zeros(n, dtype=torch.bool)  # (N,)
    pooled[index], tokens[index], mask[index], present[index] = encoded.pooled, encoded.tokens, encoded.mask, encoded.present
    return Encoded(pooled, tokens, mask, present)


def pooled_rows(features: FeatureSet) -> SplitTensors:
    """The rows of every split in one SplitTensors, in the order train, validation, test (each
    split's token sequences padded with masked zero tokens to the longest split's length)."""
    parts = [features.splits[s] for s in SPLITS]

    def cat_tokens(name: str, key: str) -> torch.Tensor:
        tensors = [getattr(p, name)[key] for p in parts]  # each (N_s, T_s, ...) for tokens (N_s, T_s) for masks
        length = max(t.shape[1] for t in tensors)
        padded = [torch.nn.functional.pad(t, (0, 0, 0, length - t.shape[1]) if t.dim() == 3 else (0, length - t.shape[1]))
                  for t in tensors]  # each (N_s, T, ...)
        return torch.cat(padded)  # (N, T, D) or (N, T)

    modalities = sorted(parts[0].pooled)
    return SplitTensors(
        pooled={m: torch.cat([p.pooled[m] for p in parts]) for m in modalities},  # m -> (N, D_m)
        tokens={m: cat_tokens("tokens", m) for m in modalities},  # m -> (N, T_m, D_m)
        token_mask={m: cat_tokens("token_mask", m) for m in modalities},  # m -> bool (N, T_m)
        labels=torch.cat([p.labels for p in parts]),  # (N,) or (N, L)
        available=torch.cat([p.available for p in parts]))  # (N, M)


def fold_splits(features: FeatureSet, k: int, fold: int, seed: int, validation: float = 0.15
                ) -> dict[str, SplitTensors]:
    """Fold ``fold`` of a k-fold cross-validation over the rows of all the dataset's splits:
    {"train", "validation", "test"} (benchmark/data/splits.py ``fold_indices``: test is the fold,
    validation is carved from the other folds, ``validation`` of all rows). Stratified by class for
    multiclass and binary, shuffled for multilabel and regression; ``seed`` fixes the folds, so
    every strategy and seed of a matrix sees the same ones. The cached features are reused: the
    encoders' fitted statistics (tabular and vector standardisation) stay those of the card's own
    training split, which for all but one fold holds some of the fold's test rows."""
    pooled = pooled_rows(features)
    labels = pooled.labels.cpu().numpy() if features.task in ("multiclass", "binary") else None
    index = fold_indices(labels, len(pooled), k, fold, seed, validation)

    def take(rows) -> SplitTensors:
        rows = torch.as_tensor(rows, dtype=torch.long)  # (n,)
        pick = lambda d: {m: t[rows] for m, t in d.items()}  # noqa: E731
        return SplitTensors(pick(pooled.pooled), pick(pooled.tokens), pick(pooled.token_mask), pooled.labels[rows],
                            pooled.available[rows])

    return {split: take(rows) for split, rows in index.items()}
