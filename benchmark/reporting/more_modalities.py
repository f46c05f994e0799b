"""Datasets with three or more modalities: what a fused configuration gains over the best PAIR of
modalities (the same trained model evaluated with only two present: the subset scores the runs
log), next to the gain over the best single modality; and the strategies the matrix asked for that
state a limit on the number of modalities they take, listed as not applicable (the matrix's Plan
has no cells for them, benchmark/run/plan.py; the coordinator records them on the parent run, tag
``vocabulary.TAG_NOT_APPLICABLE``)."""

from __future__ import annotations

import json

from benchmark.reporting.analysis import UNIMODAL, DatasetAnalysis, metric_label, metric_spec
from benchmark.reporting.numbers import num, signed
from benchmark.vocabulary import TAG_NOT_APPLICABLE, subset_label, subset_modalities


def subset_sizes(a: DatasetAnalysis) -> dict[str, int]:
    """Subset suffix ("image-text") -> how many modalities it holds."""
    return {s: len(subset_modalities(s)) for s in a.subsets}


def pair_gain_table(a: DatasetAnalysis) -> tuple[str, list[str], list[list[str]], str] | None:
    """(caption, header, rows, align) for a dataset with 3+ modalities whose runs logged every pair's
    subset score; None otherwise. Per fused configuration (in leaderboard order): its full-input
    score, its best pair and best single modality (both the same model with only those present, in
    the subset metric) and the full input's gain over each (positive = better, in the metric's
    direction). A gain near 0 over the best pair says the remaining modality adds nothing."""
    sizes = subset_sizes(a)
    full = max(sizes.values(), default=0)
    pairs = [s for s, k in sizes.items() if k == 2]
    singles = [s for s, k in sizes.items() if k == 1]
    if full < 3 or not pairs or a.configs.empty:
        return None
    higher = metric_spec(a.subset_metric)[1]
    sign = 1.0 if higher else -1.0
    full_key = next(s for s, k in sizes.items() if k == full)
    ranked = a.ranked
    fused = ranked[(ranked["family"] != UNIMODAL) & (ranked["n"] > 0)]
    rows = []
    for _, r in fused.iterrows():
        whole = r.get(f"subset:{full_key}")
        if whole is None or whole != whole:
            continue

        def best(keys: list[str]) -> tuple[str, float]:
            scored = [(k, r.get(f"subset:{k}")) for k in keys]
            scored = [(k, v) for k, v in scored if v is not None and v == v]
            if not scored:
                return "n/a", float("nan")
            return max(scored, key=lambda kv: sign * kv[1])

        pair, pair_score = best(pairs)
        single, single_score = best(singles)
        rows.append([r["variant"], f"{r['dropout']}", num(whole), f"{subset_label(pair)}: {num(pair_score)}",
                     signed(sign * (whole - pair_score)), f"{subset_label(single)}: {num(single_score)}",
                     signed(sign * (whole - single_score))])
    if not rows:
        return None
    name = metric_label(a.subset_metric)
    caption = (f"`{a.name}` has {full} modalities: what each fused configuration gains from the full input over its "
               f"best pair and its best single modality, all test {name} of the same trained model with only those "
               "modalities present (the subset scores; mean over seeds). Gain = full − best"
               + ("" if higher else f" reversed ({name}: lower is better)") + ", positive = the extra modalities help. "
               "The best pair and single modality are the highest-scoring subsets on test: a descriptive, "
               "conservative bar, not a choice the benchmark acts on. The gain over separately trained unimodal "
               "baselines is in the fusion-gain table above.")
    header = ["strategy", "train dropout", f"full input ({name})", "best pair", "gain over best pair",
              "best single modality", "gain over best single"]
    return caption, header, rows, "lrrlrlr"


def not_applicable(parent: dict, dataset: str) -> dict[str, str]:
    """Strategy -> why it did not run on ``dataset`` (its stated modality limit), from the parent run's
    tag; empty when the matrix skipped none (the tag is written only then)."""
    raw = (parent or {}).get("tags", {}).get(TAG_NOT_APPLICABLE)
    if not raw:
        return {}
    try:
        return dict(json.loads(raw).get(dataset, {}))
    except (TypeError, ValueError, AttributeError):
        return {}


def not_applicable_text(parent: dict, dataset: str) -> str | None:
    """One sentence naming the strategies that do not apply to ``dataset``, or None."""
    skipped = not_applicable(parent, dataset)
    if not skipped:
        return None
    listed = "; ".join(f"`{s}` ({why})" for s, why in sorted(skipped.items()))
    return (f"**Not applicable here:** {listed}. These strategies state a limit on how many modalities they take, "
            "so the matrix did not train them on this dataset; they are not failures and not missing results.")

