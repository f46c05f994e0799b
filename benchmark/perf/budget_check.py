"""`fusebench perf budget`: is the profile's training budget enough? Each strategy is trained
with its default hyperparameters under the profile's budget (epoch cap and patience) and
under a budget ``factor`` times larger, on the same seeds, and both test scores are printed
with their difference, the *budget regret*: what a strategy would gain from more training.
A small regret for every strategy means the verdict is not "whoever learns fastest"."""

from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass
from typing import Callable

from benchmark.run.plan import Plan


@dataclass
class BudgetRow:
    dataset: str
    variant: str
    metric: str
    score: float  # mean test score (ranking metric) under the profile's budget
    score_large: float  # ... under the larger budget
    higher_is_better: bool  # the metric's direction (mae, rmse: lower is better)
    epochs: float  # mean epochs run
    epochs_large: float
    capped: int  # seeds stopped by the cap under the profile's budget
    seconds: float

    @property
    def regret(self) -> float:
        """What the profile's budget loses against the larger one, in the metric (positive = worse)."""
        gain = self.score_large - self.score
        return gain if self.higher_is_better else -gain


def budget_regret(plan: Plan, dropout: float, factor: int,
                  log: Callable[[str], None] = print) -> list[BudgetRow]:
    """Train every (dataset, strategy variant) of the matrix of ``plan`` on its seeds at ``dropout``
    with the defaults, under the profile's (epochs, patience) and under (factor x epochs, factor x
    patience)."""
    from benchmark.features.tensors import build_features
    from benchmark.vocabulary import higher_is_better
    from benchmark.train.cell import CellBudget
    from benchmark.train.evaluation import References, evaluate
    from benchmark.train.loop import train
    from benchmark.train.model import build_model
    from benchmark.train.tasks import Task
    from benchmark.train.tuning import default_params

    config = plan.config
    profile = dataclasses.replace(CellBudget.of(config), tuned=False)
    # The larger budget waits a fixed factor x patience after the best epoch, from epoch 10 on
    # (the fixed rule of protocol 2), whatever rule the profile uses.
    large = dataclasses.replace(profile, epochs=config.epochs * factor, patience=config.patience * factor,
                                patience_ratio=0.0, min_epochs=max(10, config.min_epochs))
    budgets = {"profile": profile, "large": large}
    cells = [c for c in plan.cells if c.dropout == dropout]
    rows: list[BudgetRow] = []
    groups: dict[tuple[str, str], list] = {}
    for cell in cells:
        groups.setdefault((cell.dataset, cell.variant), []).append(cell)
    features_by_dataset = {}
    cards = plan.cards
    for (dataset, variant), group in groups.items():
        if dataset not in features_by_dataset:
            features = build_features(cards[dataset], log=lambda *_: None, max_tokens=config.max_tokens)
            splits = features.splits_on(config.device)
            features_by_dataset[dataset] = (features, splits)
        features, splits = features_by_dataset[dataset]
        metric, task = cards[dataset].ranking_metric, Task.of(features)
        references = References.of(splits["train"].labels, splits["test"].labels, features.num_classes, task)
        started = time.perf_counter()
        scores: dict[str, list[float]] = {"profile": [], "large": []}
        epochs: dict[str, list[int]] = {"profile": [], "large": []}
        capped = 0
        for cell in group:
            model_hp, training = default_params(cell.strategy)
            for name, budget in budgets.items():
                model = build_model(cell.strategy, features, {**model_hp, **cell.fixed_hparams}, cell.seed)
                stats = train(model, splits["train"], features.modalities, budget.train_config(cell, metric, task, **training),
                              val_split=splits["validation"])
                test = evaluate(model, splits["test"], features.modalities, references, curve=False)
                scores[name].append(test.score(metric))
                epochs[name].append(stats.epochs_run)
                capped += name == "profile" and not stats.converged
        row = BudgetRow(dataset, variant, metric, statistics.mean(scores["profile"]), statistics.mean(scores["large"]),
                        higher_is_better(metric),
                        statistics.mean(epochs["profile"]), statistics.mean(epochs["large"]), capped,
                        time.perf_counter() - started)
        log(format_row(row))
        rows.append(row)
    return rows


def header(factor: int) -> str:
    return (f"{'dataset':<18}{'strategy':<28}{'metric':<10}{'profile':>9}{f'{factor}x':>9}{'regret':>9}"
            f"{'epochs':>8}{f'epochs {factor}x':>10}{'capped':>8}{'seconds':>9}")


def format_row(row: BudgetRow) -> str:
    return (f"{row.dataset:<18}{row.variant:<28}{row.metric:<10}{row.score:>9.3f}{row.score_large:>9.3f}"
            f"{row.regret:>+9.3f}{row.epochs:>8.1f}{row.epochs_large:>10.1f}{row.capped:>8d}{row.seconds:>9.1f}")


def summary(rows: list[BudgetRow], limit: float = 0.01) -> list[str]:
    """Per dataset: the worst regret and how many strategies exceed ``limit``."""
    lines = []
    for dataset in dict.fromkeys(r.dataset for r in rows):
        mine = [r for r in rows if r.dataset == dataset]
        worst = max(mine, key=lambda r: r.regret)
        over = [r.variant for r in mine if r.regret > limit]
        lines.append(f"{dataset}: worst regret {worst.regret:+.3f} ({worst.variant}); "
                     f"{len(over)} of {len(mine)} above {limit:.2f}" + (f": {', '.join(over)}" if over else ""))
    return lines
