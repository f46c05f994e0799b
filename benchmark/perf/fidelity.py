"""`fusebench perf fidelity`: does the cheaper protocol reach the same verdict?

A slice of a profile (datasets, strategies, seeds; its training dropout rates) is run twice on the
same seeds: under the profile's protocol and under the *reference* protocol, the expensive one the
cheaper default replaced (one Optuna study per training dropout rate, early stopping only from
epoch 10 after a fixed wait of ``patience`` >= 10 epochs, an epoch cap >= 60, every token). Both are
ordinary matrices in the user's stores, so a second call reuses every finished cell. Per dataset it
prints:

- Kendall's tau between the two rankings of the strategies (scipy.stats.kendalltau, tau-b);
- the largest absolute difference of any strategy's score between the two protocols;
- each protocol's winner and whether the profile's winner lies within the reference winner's 95%
  interval (its reference score is at least the lower end of that interval: the reference cannot
  tell the two apart).

With ``--noise-floor`` the profile also runs a second time under another *tuning draw* (the same
protocol, seeds and data; only the tuning sampler's and the trials' seeds differ), and the same
figures are printed for the profile against itself: no protocol comparison can be read more finely
than the figures tuning luck alone produces. Both protocols' samplers take their seeds from what is
tuned, not from the protocol (benchmark/train/seeds.py), so they draw the same first candidates.

A strategy's score is its mean test score in the dataset's ranking metric over seeds and training
dropout rates (a strategy variant such as ``unimodal[text]`` counts as a strategy); its interval is
the t-interval over the per-seed means. Winners are picked among strategies none of whose runs is
marked (collapsed or not converged), as the report picks them."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

from benchmark.run.config import MatrixConfig

REFERENCE_MIN_EPOCHS = 10
REFERENCE_MIN_PATIENCE = 10
REFERENCE_MIN_EPOCH_CAP = 60


def reference_protocol(config: MatrixConfig) -> MatrixConfig:
    """The same matrix under the reference protocol (protocol 2's rules, at least its budgets)."""
    return dataclasses.replace(
        config, name=f"{config.name}-reference", tuning="per_rate", min_epochs=REFERENCE_MIN_EPOCHS,
        patience_ratio=0.0, patience=max(config.patience, REFERENCE_MIN_PATIENCE),
        epochs=max(config.epochs, REFERENCE_MIN_EPOCH_CAP), max_tokens=None)


@dataclass(frozen=True)
class StrategyScore:
    mean: float  # mean over seeds of the mean over training dropout rates
    ci95: float  # half-width of the 95% t-interval over seeds (nan with one seed)
    marked: bool  # some run was collapsed or not converged


@dataclass(frozen=True)
class Fidelity:
    dataset: str
    metric: str
    higher_is_better: bool
    tau: float
    largest_difference: float
    largest_difference_strategy: str
    winner: str | None  # the profile's
    reference_winner: str | None
    consistent: bool  # the profile's winner lies within the reference winner's 95% interval
    strategies: int


def strategy_scores(runs, metric_column: str, collapsed_column: str, not_converged_column: str
                    ) -> dict[str, StrategyScore]:
    """variant -> its score, from one dataset's finished runs (a DataFrame: variant, dropout, seed,
    the metric column and the mark columns)."""
    from benchmark.reporting.stats import mean_ci95

    scores = {}
    for variant, group in runs.groupby("variant"):
        per_seed = group.groupby("seed")[metric_column].mean()  # each seed's mean over dropout rates
        mean, ci = mean_ci95(per_seed.tolist())
        marked = any(column in group and bool(group[column].fillna(0).astype(float).gt(0).any())
                     for column in (collapsed_column, not_converged_column))
        scores[str(variant)] = StrategyScore(mean, ci, marked)
    return scores


def winner(scores: dict[str, StrategyScore], higher_is_better: bool) -> str | None:
    """The best strategy none of whose runs is marked (None when every one is)."""
    sign = 1.0 if higher_is_better else -1.0
    eligible = {v: s for v, s in scores.items() if not s.marked and math.isfinite(s.mean)}
    return max(eligible, key=lambda v: (sign * eligible[v].mean, v)) if eligible else None


def compare(dataset: str, metric: str, higher_is_better: bool, profile: dict[str, StrategyScore],
            reference: dict[str, StrategyScore]) -> Fidelity:
    """The fidelity figures of one dataset from both protocols' strategy scores."""
    from scipy.stats import kendalltau

    common = sorted(set(profile) & set(reference))
    ours, theirs = [profile[v].mean for v in common], [reference[v].mean for v in common]
    tau = float(kendalltau(ours, theirs).statistic) if len(common) >= 2 else float("nan")
    differences = {v: abs(profile[v].mean - reference[v].mean) for v in common}
    worst = max(differences, key=differences.get) if differences else ""
    ours_best, their_best = winner(profile, higher_is_better), winner(reference, higher_is_better)
    consistent = False
    if ours_best is not None and their_best is not None and ours_best in reference:
        best = reference[their_best]
        half = best.ci95 if math.isfinite(best.ci95) else 0.0
        gap = (best.mean - reference[ours_best].mean) * (1.0 if higher_is_better else -1.0)
        consistent = ours_best == their_best or gap <= half
    return Fidelity(dataset, metric, higher_is_better, tau, differences.get(worst, float("nan")), worst,
                    ours_best, their_best, consistent, len(common))


def matrix_scores(tracking_uri: str, matrix_id: str) -> dict[str, tuple[str, bool, dict[str, StrategyScore]]]:
    """dataset -> (ranking metric, higher is better, variant -> score) of one matrix's finished runs."""
    from benchmark.reporting.analysis import analyse, metric_spec
    from benchmark.reporting.fetch import fetch_matrix
    from benchmark.vocabulary import COLLAPSED, NOT_CONVERGED

    runs = fetch_matrix(tracking_uri, matrix_id)
    out = {}
    for dataset, group in runs.ok.groupby("dataset"):
        problems = runs.problems[runs.problems["dataset"] == dataset] if len(runs.problems) else runs.problems
        analysis = analyse(str(dataset), group, problems)
        column = metric_spec(analysis.ranking)[0]
        out[str(dataset)] = (analysis.ranking, analysis.higher_is_better,
                             strategy_scores(group, column, COLLAPSED, NOT_CONVERGED))
    return out


def header() -> str:
    return (f"{'dataset':<18}{'metric':<10}{'strategies':>11}{'tau':>7}{'largest |diff|':>16}  {'(strategy)':<26}"
            f"{'winner':<24}{'reference winner':<24}{'within ref 95% CI':<18}")


def format_row(row: Fidelity) -> str:
    return (f"{row.dataset:<18}{row.metric:<10}{row.strategies:>11}{row.tau:>7.2f}{row.largest_difference:>16.3f}  "
            f"{row.largest_difference_strategy:<26}{str(row.winner):<24}{str(row.reference_winner):<24}"
            f"{'yes' if row.consistent else 'NO':<18}")


def tuning_replicate(config: MatrixConfig) -> MatrixConfig:
    """The same matrix and protocol with another draw of the tuning randomness (seeds.py)."""
    return dataclasses.replace(config, name=f"{config.name}-draw1", tuning_draw=config.tuning_draw + 1)


def _describe(matrix: MatrixConfig) -> str:
    wait = (f"ceil({matrix.patience_ratio:g} x best epoch), at most {matrix.patience}" if matrix.patience_ratio
            else str(matrix.patience))
    tokens = "all" if matrix.max_tokens is None else f"<= {matrix.max_tokens}"
    return (f"tuning {matrix.tuning} (draw {matrix.tuning_draw}), early stopping from epoch {matrix.min_epochs}, "
            f"wait {wait}, cap {matrix.epochs}, tokens {tokens}")


def _compare_matrices(tracking_uri: str, ours_id: str, theirs_id: str) -> list[Fidelity]:
    ours, theirs = matrix_scores(tracking_uri, ours_id), matrix_scores(tracking_uri, theirs_id)
    rows = []
    for dataset in ours:
        if dataset in theirs:
            metric, higher, profile_scores = ours[dataset]
            rows.append(compare(dataset, metric, higher, profile_scores, theirs[dataset][2]))
    return rows


def run_fidelity(config: MatrixConfig, tracking_uri: str, storage_url: str, workers: int,
                 log: Callable[[str], None] = print, noise_floor: bool = False) -> dict[str, list[Fidelity]]:
    """Run (or resume) ``config`` and its reference, then compare them per dataset: {"reference":
    rows}. With ``noise_floor``, also ``config`` again under another tuning draw (the same protocol,
    other tuning luck), compared with ``config`` the same way: {"noise floor": rows} shows how
    far the figures move when nothing but the luck of tuning changes."""
    from benchmark.run.coordinator import finish_bench, run_bench
    from benchmark.run.plan import Plan

    matrices = [("profile", config)]
    if noise_floor:
        matrices.append(("tuning draw", tuning_replicate(config)))
    matrices.append(("reference", reference_protocol(config)))
    ids = {}
    for label, matrix in matrices:
        log(f"[{label}] matrix {matrix.name}: {_describe(matrix)}")
        summary = run_bench(Plan.build(matrix), tracking_uri, storage_url, workers=workers, log=log)
        finish_bench(summary, tracking_uri, matrix.device, report=False, log=log)
        log(f"[{label}] {summary.cells} cells in {summary.wall_seconds:.0f} s ({summary.skipped} already done, "
            f"{len(summary.failed)} failed)")
        ids[label] = summary.matrix_id
    tables = {"reference": _compare_matrices(tracking_uri, ids["profile"], ids["reference"])}
    if noise_floor:
        tables["noise floor"] = _compare_matrices(tracking_uri, ids["profile"], ids["tuning draw"])
    return tables


def main(args, device: str) -> int:
    from benchmark.run.config import load_profile, parse_list
    from benchmark.stores.database import checked_storage_url, checked_tracking_uri

    config = load_profile(args.profile).with_overrides(
        datasets=parse_list(args.datasets), strategies=parse_list(args.strategies), seeds=parse_list(args.seeds, int),
        device=device)
    tables = run_fidelity(config, checked_tracking_uri(args.tracking_uri, "--tracking-uri"),
                          checked_storage_url(args.storage, "--storage"), args.workers,
                          log=lambda line: print(line, flush=True), noise_floor=args.noise_floor)
    print(f"fidelity of profile {config.name!r} against the reference protocol; seeds "
          f"{', '.join(map(str, config.seeds))}; training dropout {', '.join(map(str, config.dropout_rates))} ({device})")
    print(header())
    for row in tables["reference"]:
        print(format_row(row))
    if "noise floor" in tables:
        print(f"noise floor: profile {config.name!r} against itself with another tuning draw (same protocol, seeds "
              f"and data; only the sampler's and the trials' seeds differ): the reference comparison cannot be "
              f"read more finely than this")
        print(header().replace("reference winner", "draw-1 winner   ").replace("within ref 95% CI", "within draw-1 CI "))
        for row in tables["noise floor"]:
            print(format_row(row))
    return 0
