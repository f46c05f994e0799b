"""Comparison report built from the MLflow tracking store alone (never imports torch)."""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from statistics import mean, stdev

from benchmark.paths import reports_dir
from benchmark.tracking import EXPERIMENT, TAG_ERROR, TAG_KIND, TAG_MATRIX, TAG_STATUS


@dataclass
class CellRow:
    dataset: str
    variant: str
    family: str
    dropout: float
    seed: int
    metrics: dict[str, float]


def mean_ci95(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% t confidence interval (nan half-width for n < 2)."""
    if not values:
        return float("nan"), float("nan")
    if len(values) < 2:
        return values[0], float("nan")
    from scipy import stats

    half = stats.t.ppf(0.975, len(values) - 1) * stdev(values) / math.sqrt(len(values))
    return mean(values), float(half)


def fetch_rows(tracking_uri: str, matrix_id: str | None = None) -> tuple[str, list[CellRow], list[tuple[str, str]]]:
    """Finished and failed cell runs of one matrix (the newest matrix when none is given)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        raise LookupError(f"no '{EXPERIMENT}' experiment in tracking store {tracking_uri}; run `make bench` first")
    if matrix_id is None:
        parents = client.search_runs([experiment.experiment_id], f"tags.`{TAG_KIND}` = 'matrix'",
                                     order_by=["attributes.start_time DESC"], max_results=1)
        if not parents:
            raise LookupError(f"no matrix runs in tracking store {tracking_uri}; run `make bench` first")
        matrix_id = parents[0].data.tags[TAG_MATRIX]
    runs = client.search_runs([experiment.experiment_id],
                              f"tags.`{TAG_KIND}` = 'cell' and tags.`{TAG_MATRIX}` = '{matrix_id}'", max_results=50000)
    rows, failures = [], []
    for run in runs:
        params, tags = run.data.params, run.data.tags
        if tags.get(TAG_STATUS) == "ok" and run.info.status == "FINISHED":
            rows.append(CellRow(params["dataset"], params["variant"], params["family"],
                                float(params["modality_dropout"]), int(params["seed"]), dict(run.data.metrics)))
        elif tags.get(TAG_STATUS) == "failed":
            failures.append((run.info.run_name or run.info.run_id, tags.get(TAG_ERROR, "").splitlines()[0]))
    return matrix_id, rows, failures


def _fmt(value: float, half: float = float("nan"), digits: int = 3) -> str:
    if value != value:
        return "n/a"
    return f"{value:.{digits}f}" + ("" if half != half else f" ± {half:.{digits}f}")


def leaderboard(rows: list[CellRow]) -> list[dict]:
    """One entry per (dataset, variant, dropout), ranked by mean test accuracy within a dataset."""
    groups: dict[tuple, list[CellRow]] = defaultdict(list)
    for row in rows:
        groups[(row.dataset, row.variant, row.dropout)].append(row)
    entries = []
    for (dataset, variant, dropout), members in groups.items():
        get = lambda key: [m.metrics[key] for m in members if key in m.metrics]  # noqa: E731
        acc, acc_ci = mean_ci95(get("test_accuracy"))
        memory_key = next((k for k in ("peak_gpu_mem_mb", "peak_cpu_rss_mb") if get(k)), "peak_cpu_rss_mb")
        entries.append({
            "dataset": dataset, "variant": variant, "family": members[0].family, "dropout": dropout,
            "n": len(members), "accuracy": acc, "accuracy_ci": acc_ci,
            "macro_f1": mean(get("test_macro_f1")) if get("test_macro_f1") else float("nan"),
            "robustness": mean(get("robustness")) if get("robustness") else float("nan"),
            "tuning_gain": mean(get("tuning_gain")) if get("tuning_gain") else float("nan"),
            "train_sps": mean(get("train_samples_per_s")) if get("train_samples_per_s") else float("nan"),
            "infer_sps": mean(get("inference_samples_per_s")) if get("inference_samples_per_s") else float("nan"),
            "params": mean(get("param_count")) if get("param_count") else float("nan"),
            "memory_key": memory_key,
            "memory": mean(get(memory_key)) if get(memory_key) else float("nan"),
        })
    entries.sort(key=lambda e: (e["dataset"], -(e["accuracy"] if e["accuracy"] == e["accuracy"] else -1)))
    rank: dict[str, int] = defaultdict(int)
    for entry in entries:
        rank[entry["dataset"]] += 1
        entry["rank"] = rank[entry["dataset"]]
    return entries


def markdown(matrix_id: str, rows: list[CellRow], failures: list[tuple[str, str]]) -> str:
    lines = [f"# fusebench report: matrix `{matrix_id}`", ""]
    entries = leaderboard(rows)
    devices = sorted({"GPU" if e["memory_key"] == "peak_gpu_mem_mb" else "CPU" for e in entries})
    lines.append(f"{len(rows)} finished cell runs, {len(failures)} failed. Figures measured on: {', '.join(devices) or 'n/a'}. "
                 "Accuracy is on the test split: mean ± 95% t-interval over seeds (n = seeds).")
    for dataset in sorted({e["dataset"] for e in entries}):
        lines += ["", f"## {dataset}", "",
                  "| rank | strategy | family | train dropout | test accuracy | n | macro-F1 | robustness | tuning gain "
                  "| train samples/s | inference samples/s | params | peak memory (MiB) |",
                  "|---:|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for e in (x for x in entries if x["dataset"] == dataset):
            mem_label = "GPU" if e["memory_key"] == "peak_gpu_mem_mb" else "CPU RSS"
            lines.append(
                f"| {e['rank']} | {e['variant']} | {e['family']} | {e['dropout']:g} | {_fmt(e['accuracy'], e['accuracy_ci'])} "
                f"| {e['n']} | {_fmt(e['macro_f1'])} | {_fmt(e['robustness'])} | {_fmt(e['tuning_gain'], digits=3)} "
                f"| {e['train_sps']:.0f} | {e['infer_sps']:.0f} | {e['params']:.0f} | {e['memory']:.0f} ({mem_label}) |")
    if failures:
        lines += ["", "## Failed cells", ""] + [f"- {name}: {error}" for name, error in failures]
    return "\n".join(lines) + "\n"


def build_report(tracking_uri: str, matrix_id: str | None = None, out_root: Path | None = None) -> tuple[Path, str]:
    """Write reports/<matrix id>/report.md, point reports/latest at it, return (folder, markdown)."""
    matrix_id, rows, failures = fetch_rows(tracking_uri, matrix_id)
    text = markdown(matrix_id, rows, failures)
    root = out_root or reports_dir()
    folder = root / matrix_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.md").write_text(text, encoding="utf-8")
    latest = root / "latest"
    tmp = root / ".latest.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(matrix_id, tmp)
    os.replace(tmp, latest)
    return folder, text
