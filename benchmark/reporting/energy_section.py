"""What a configuration costs to make, on one dataset: energy per training run and per 1,000 inferences
(benchmark/train/energy.py), said to be measured or estimated, and the Pareto fronts of the ranking
metric against training energy and against parameter count, each front's configurations named."""

from __future__ import annotations

import pandas as pd

from benchmark.reporting.analysis import metric_label
from benchmark.reporting.cost_fronts import ENERGY, PARAMS, front_frame, front_names, score_vs_cost_front
from benchmark.reporting.numbers import count, num
from benchmark.reporting.section_context import SectionContext
from benchmark.vocabulary import ENERGY_NONE, ENERGY_PER_1K_INFERENCES_J, ENERGY_SOURCE, energy_is_estimate

NO_COUNTER = ("No energy counter: no run of this dataset logged an energy figure (codecarbon could not run "
              "where they trained, or they were trained before fusebench measured energy).")


def energy_sources(runs: pd.DataFrame) -> list[str]:
    """The distinct energy sources of the runs that logged energy, most frequent first."""
    if ENERGY_SOURCE not in runs:
        return []
    sources = runs[ENERGY_SOURCE].dropna()
    return list(sources[sources != ENERGY_NONE].value_counts().index)


def source_sentence(sources: list[str]) -> str:
    """How the report names where the energy figures come from."""
    if not sources:
        return "The runs logged energy without saying where it came from: treat it as an estimate."
    estimated = [s for s in sources if energy_is_estimate(s)]
    said = "; ".join(f"`{s}`" for s in sources)
    if estimated:
        return (f"**Estimate (rated power), not a measurement**: source {said}. Where no energy counter can be "
                "read (no RAPL, no NVML), codecarbon multiplies the CPU's rated power (TDP, from its table of CPU "
                "models) by this process's CPU load, and memory by a power per size; such figures rank "
                "configurations by the compute they used but are not watt-hours a meter would show.")
    return (f"Measured by hardware energy counters: source {said} (whole CPU package or GPU: on a shared "
            "machine they include whatever else ran; memory is codecarbon's estimate from its size).")


def write_energy(section: SectionContext) -> None:
    a, doc = section.a, section.doc
    doc.heading(f"{metric_label(a.ranking)[0].upper()}{metric_label(a.ranking)[1:]} against energy and size", 3)
    frame = front_frame(a)
    has_energy = frame[ENERGY.column].notna().any()
    if has_energy:
        runs = a.runs
        infer = runs.groupby(["variant", "dropout"])[ENERGY_PER_1K_INFERENCES_J].mean() \
            if ENERGY_PER_1K_INFERENCES_J in runs else pd.Series(dtype=float)
        doc.para(source_sentence(energy_sources(runs)))
        rows = [[r["variant"], f"{r['dropout']}", num(r[a.score]), num(r[ENERGY.column], 4),
                 num(infer.get((r["variant"], r["dropout"]), float("nan")), 3), count(r["params"]), str(r["n"])]
                for _, r in frame.iterrows()]
        section.cite["energy"] = doc.table(
            f"`{a.name}`: energy per configuration, mean over seeds. Training energy = the tuned retrain's share "
            "of the energy of the group it trained in (its seeds stacked, with the defaults' retrain where "
            "their shapes agree), split in proportion to the epochs each model ran; tuning trials, the "
            "defaults' retrain and evaluation are not in it. Energy per 1,000 inferences = full-input "
            "forward passes of 256-row batches repeated for at least 0.5 s, energy / rows x 1,000, on one "
            "seed's model. Same order as the leaderboard.",
            *section.marks(["strategy", "train dropout", a.score_label, "training energy (Wh)",
                            "energy per 1,000 inferences (J)", "parameters", "n"], "lrrrrrr", rows, frame))
    else:
        doc.para(NO_COUNTER)
    for cost, key in ((ENERGY, "energy_front"), (PARAMS, "params_front")):
        drawn = score_vs_cost_front(a, section.png(f"score_vs_{key.removesuffix('_front')}"), cost)
        if drawn is None:
            continue
        path, front = drawn
        beyond = front[front["beyond_axis"]]
        note = (f" Beyond the metric axis (drawn on its edge): {front_names(beyond)}." if len(beyond) else "")
        estimate = (" Energy is an estimate (rated power); see above." if cost is ENERGY
                    and all(energy_is_estimate(s) for s in energy_sources(a.runs) or [None]) else "")
        section.cite[key] = doc.figure(
            f"Mean {a.score_label} against {cost.title} (log scale); circled points joined by the black line "
            f"form the Pareto front (no other unmarked configuration costs less and scores better). The metric "
            f"axis is fitted to the fused strategies, so their differences show. On the front, cheapest first: "
            f"{front_names(front)}.{note}{estimate}", path)
