"""Encode every modality of every split once (through the feature cache) into tensors."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from benchmark.data.cards import SPLITS, DatasetCard
from benchmark.data.loading import DataError, LoadedDataset, load_splits
from benchmark.features import cache as feature_cache
from benchmark.features.base import EncodingError, FrontEnd
from benchmark.features.catalog import get_encoder
from benchmark.progress import progress_bar


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
    labels: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device | str) -> "SplitTensors":
        """Every tensor on ``device``, in its own dtype (no conversion). Tensors already there
        are not copied: on the CPU this is the same memory (memory-mapped stays mapped)."""
        move = lambda d: {k: v.to(device) for k, v in d.items()}  # noqa: E731
        return SplitTensors(move(self.pooled), move(self.tokens), move(self.token_mask), self.labels.to(device))

    def with_labels_on(self, device: torch.device | str) -> "SplitTensors":
        """The same features where they are, the labels on ``device`` (features too large for it)."""
        return SplitTensors(self.pooled, self.tokens, self.token_mask, self.labels.to(device))

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
    # device -> the splits placed for it (splits_on): each dataset is held once per device
    _placed: dict[str, dict[str, SplitTensors]] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

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


def build_features(card: DatasetCard, log=print) -> FeatureSet:
    """Load the card's splits and encode each (split, modality), using the cache."""
    started = time.perf_counter()
    loaded = load_splits(card)
    per_split = {s: {"pooled": {}, "tokens": {}, "token_mask": {}} for s in SPLITS}
    hits = misses = size = 0
    encoders = {}
    front_ends = {}
    for spec in sorted(card.modalities, key=lambda m: m.name):
        try:
            encoder = get_encoder(spec.encoder, **spec.options)
        except KeyError as exc:
            raise DataError(f"dataset {card.name!r}, modality {spec.name!r}, column {spec.column!r}: {exc}") from None
        encoders[spec.name] = f"{spec.encoder}@{encoder.version}"
        front_end = encoder.front_end()
        if front_end is not None:
            front_ends[spec.name] = front_end
        columns = spec.options.get("columns")
        if columns:
            encoder.fit_columns(loaded.splits["train"], columns)
        for split in SPLITS:
            key = feature_cache.cache_key(
                revision=loaded.revision, split=split, column=columns or spec.column, encoder=spec.encoder,
                version=encoder.version, options=spec.options, state=encoder.state(),
            )
            entry = feature_cache.load_entry(key)
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
    splits = {
        s: SplitTensors(**per_split[s], labels=torch.tensor(loaded.splits[s][card.label], dtype=torch.long))
        for s in SPLITS
    }
    seconds = time.perf_counter() - started
    log(f"[{card.name}] features ready in {seconds:.1f}s ({hits} cached, {misses} encoded, {size / 2**20:.1f} MiB on disk)")
    return FeatureSet(card.name, card.modality_names, loaded.class_names, splits, seconds, hits, misses, size, encoders,
                      front_ends)


def mask_as_bool(mask: torch.Tensor) -> torch.Tensor:
    """A cached 0/1 uint8 mask as bool, without copying it (same bytes, one per element)."""
    return mask.view(torch.bool) if mask.dtype == torch.uint8 else mask.bool()


def _encode(loaded: LoadedDataset, spec, split: str, encoder, log) -> dict[str, torch.Tensor]:
    dataset = loaded.splits[split]
    columns = spec.options.get("columns")
    values = _column_values(loaded, dataset, spec, split, columns)
    started = time.perf_counter()
    with progress_bar(f"encode {loaded.card.name}/{split}/{spec.name} ({spec.encoder})", total=len(values)) as advance:
        try:
            encoded = encoder.encode(values, progress=advance)
        except EncodingError as exc:
            raise DataError(
                f"dataset {loaded.card.name!r}, split {split!r}, column {spec.column!r} (modality {spec.name!r}), "
                f"row {exc.row}: {exc.problem}"
            ) from None
    log(f"[{loaded.card.name}] encoded {split}/{spec.name}: {len(values)} rows in {time.perf_counter() - started:.1f}s")
    return {"pooled": encoded.pooled.half(), "tokens": encoded.tokens.half(), "mask": encoded.mask.to(torch.uint8)}


def _column_values(loaded: LoadedDataset, dataset, spec, split: str, columns) -> list:
    """The raw values to encode. Image columns are read undecoded so that the encoder decodes
    each row itself and can name the row of an unreadable image."""
    import datasets as hf

    try:
        if columns:
            return dataset.select_columns(list(columns)).to_list()
        feature = dataset.features.get(spec.column)
        if isinstance(feature, hf.Image) and feature.decode:
            dataset = dataset.cast_column(spec.column, hf.Image(decode=False))
        return dataset[spec.column]
    except Exception as exc:  # decoding inside datasets (e.g. audio) without a row number
        raise DataError(
            f"dataset {loaded.card.name!r}, split {split!r}, column {spec.column!r} (modality {spec.name!r}): "
            f"cannot read the column: {exc.__class__.__name__}: {exc}"
        ) from exc
