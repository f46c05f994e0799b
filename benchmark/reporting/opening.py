"""The report's opening lines: what was run (finished, failed and unfinished cells, devices, seeds,
folds), how scores are read, and the run itself (commit, machine, phase times, budget) from the
matrix's parent run."""

from __future__ import annotations

from benchmark.reporting.document import Document
from benchmark.reporting.fetch import MatrixRuns
from benchmark.reporting.replicates import folds_note


def write_opening(doc: Document, runs: MatrixRuns, datasets: list[str]) -> None:
    ok, problems = runs.ok, runs.problems
    devices = sorted(set(ok["device"])) if "device" in ok and len(ok) else []
    seeds = sorted(set(ok["seed"])) if len(ok) else []
    n_failed = int((problems["status"] == "failed").sum())
    n_unfinished = len(problems) - n_failed
    doc.para(f"{len(ok)} finished cell runs on {len(datasets)} dataset(s), {n_failed} failed, {n_unfinished} "
             f"unfinished. Device: {', '.join(devices) or 'n/a'}; seeds: {', '.join(map(str, seeds)) or 'n/a'}{folds_note(ok)}. "
             "A configuration is one strategy trained with one modality-dropout rate. Scores are on the test "
             "split with every modality present unless stated; mean over seeds ± half-width of the 95% "
             "t-interval (t(0.975, n−1) · sd / √n), n = number of seeds. Each dataset is ranked by its "
             "ranking metric (by default: accuracy for multiclass, AUROC for binary, micro-F1 for multilabel, MAE "
             "for regression, where lower is better and the lowest ranks first; a card may name another); the "
             "leaderboard caption says which.")
    run_line = run_description(runs.parent)
    if run_line:
        doc.para(run_line)

def run_description(parent: dict) -> str:
    """"**Run.** commit ..., machine ..., phase times ..." from the matrix's parent run (tags
    env.git_commit, env.machine; metrics phase_seconds.* and wall_seconds, logged when the bench
    finished: a report rebuilt afterwards shows them). Empty when none is known."""
    tags, metrics, config = parent.get("tags", {}), parent.get("metrics", {}), parent.get("config", {})
    parts = []
    commit = tags.get("env.git_commit")
    if commit:
        parts.append(f"commit `{commit[:12]}`" + (" (with uncommitted changes)" if tags.get("env.git_dirty") == "True"
                                                   else ""))
    if tags.get("env.machine"):
        parts.append(f"machine: {tags['env.machine']}")
    phases = {k[len("phase_seconds."):]: v for k, v in metrics.items() if k.startswith("phase_seconds.")}
    if "wall_seconds" in metrics:
        detail = ", ".join(f"{name} {seconds / 60:.1f} min" for name, seconds in phases.items())
        parts.append(f"wall time {metrics['wall_seconds'] / 60:.1f} min" + (f" ({detail})" if detail else ""))
    budget = []
    if config.get("max_tokens") is not None or "max_tokens" in config:
        tokens = config.get("max_tokens")
        budget.append(f"token strategies see {'every token' if tokens is None else f'at most {tokens} tokens'} "
                      f"per modality")
    if config.get("tuning"):
        budget.append(f"tuning {config['tuning'].replace('_', ' ')}")
    if budget:
        parts.append("; ".join(budget))
    return ("**Run.** " + "; ".join(parts) + ".") if parts else ""
