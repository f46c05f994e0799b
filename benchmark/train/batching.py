"""Turning a split into model inputs: choose pooled or token features, apply modality
dropout (training only) and build presence masks."""

from __future__ import annotations

import torch

from benchmark.features.tensors import SplitTensors


def model_inputs(split: SplitTensors, modalities: list[str], index: torch.Tensor, tokens: bool,
                 device: torch.device | str | None = None):
    """Rows ``index`` of ``split``, as float32 on ``device`` (default: the labels' device, where
    training runs). The features stay in their cached dtype (fp16) wherever they are held (the
    GPU, or memory-mapped on the CPU); the rows are gathered there, moved in that dtype and
    converted on ``device``, batch by batch. ``index`` may live on any device.
    -> (inputs: m -> float32 (b, D) or (b, T, D), token_mask: m -> bool (b, T) or None)."""
    device = torch.device(device) if device is not None else split.labels.device
    indices: dict[torch.device, torch.Tensor] = {}

    def rows(x: torch.Tensor) -> torch.Tensor:
        if x.device not in indices:
            indices[x.device] = index.to(x.device)
        picked = x[indices[x.device]]  # (b, ...), cached dtype, where x is held
        if picked.device != device:
            if device.type == "cuda" and picked.device.type == "cpu":
                picked = picked.pin_memory()  # so the copy can overlap with the GPU's work
            picked = picked.to(device, non_blocking=True)
        return picked

    if tokens:
        inputs = {m: rows(split.tokens[m]).to(torch.float32) for m in modalities}  # m -> (b, T, D)
        return inputs, {m: rows(split.token_mask[m]).to(torch.bool) for m in modalities}  # m -> (b, T)
    return {m: rows(split.pooled[m]).to(torch.float32) for m in modalities}, None  # m -> (b, D)


def presence_rates(dropout, modalities: list[str]) -> float | torch.Tensor:
    """A training dropout as :func:`random_presence` takes it: a float (every modality) unchanged; a rate
    per modality (("image", 0.5), ("text", 0.1)) as a float32 (M,) vector in ``modalities`` order, 0 for a
    modality it does not name. Raises ValueError naming a modality the data does not have."""
    if isinstance(dropout, (int, float)):
        return float(dropout)
    rates = dict(dropout)
    unknown = sorted(set(rates) - set(modalities))
    if unknown:
        raise ValueError(f"modality dropout names {unknown}, not among the data's modalities {list(modalities)}")
    return torch.tensor([float(rates.get(m, 0.0)) for m in modalities], dtype=torch.float32)  # (M,)


def random_presence(batch: int, num_modalities: int, missing_rate: float | torch.Tensor, generator: torch.Generator,
                    device: torch.device | str = "cpu", available: torch.Tensor | None = None) -> torch.Tensor:
    """Drop each modality of each row with probability ``missing_rate``, keeping at least one.

    ``missing_rate``: a float for every modality, or a (M,) vector with a rate per modality (sorted
    modality order; :func:`presence_rates`). Both draw the same uniform numbers, so a vector of equal
    rates gives the float's masks.

    ``available`` (bool (B, M), the modalities present in the data itself; None: all) is ANDed
    in: a modality absent from the data is never present. Rows that lost everything get one of
    their available modalities back, chosen uniformly. -> bool (B, M)
    """
    if isinstance(missing_rate, torch.Tensor):
        missing_rate = missing_rate.to("cpu", torch.float32).view(1, num_modalities)  # (1, M)
    present = torch.rand(batch, num_modalities, generator=generator) >= missing_rate  # (B, M)
    available = None if available is None else available.to("cpu", torch.bool)  # (B, M)
    if available is not None and bool(available.all()):
        available = None  # nothing absent: the draws of a complete dataset, unchanged
    if available is not None:
        present &= available
    empty = ~present.any(dim=1)  # (B,)
    if empty.any():
        rows = empty.nonzero(as_tuple=True)[0]  # (E,)
        if available is None:
            keep = torch.randint(num_modalities, (len(rows),), generator=generator)  # (E,)
        else:
            keep = torch.multinomial(available[rows].float(), 1, generator=generator).squeeze(1)  # (E,)
        present[rows, keep] = True
    return present.to(device)


def with_available(present: torch.Tensor, available: torch.Tensor) -> torch.Tensor:
    """``present`` ANDed with the modalities present in the data; a row left with none gets its
    available ones instead (so the strategy always sees one; a caller scoring a subset excludes
    such rows, :func:`benchmark.train.evaluation.scored_rows`). (B, M), (B, M) -> bool (B, M)"""
    available = available.to(present.device, torch.bool)
    both = present & available  # (B, M)
    return torch.where(both.any(dim=1, keepdim=True), both, available)


def subset_presence(batch: int, modalities: list[str], subset: tuple[str, ...], device) -> torch.Tensor:
    """Presence mask with exactly ``subset`` available in every row. -> bool (B, M)"""
    row = torch.tensor([m in subset for m in modalities], dtype=torch.bool, device=device)
    return row.unsqueeze(0).expand(batch, -1).contiguous()
