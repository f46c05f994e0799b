"""`fusebench bench --dry-run`'s time estimate: what it counts (no timing here: speed figures live in
benchmark commands, not in tests)."""

from __future__ import annotations

from benchmark.cli import _matrix_plan, build_parser
from benchmark.run.estimate import card_rows, estimate_parts, estimate_seconds

FACTOR = 2.0
ARGS = ["bench", "--profile", "smoke", "--datasets", "toy", "--strategies", "concat,cross_attention", "--trials", "2",
        "--epochs", "6", "--patience", "2", "--seeds", "0,1", "--dropout", "0.3", "--device", "cpu", "--no-report"]


def test_card_rows_reads_the_size_note():
    class Card:
        info = {"size": "3,000 of 22,628 reviews with text and department"}

    assert card_rows(Card()) == 3000
    Card.info = {}
    assert card_rows(Card()) is None


def test_estimate_counts_every_overhead_and_grows_with_the_work(toy_card, fusebench_home):
    """Every overhead is counted and more work is estimated to take longer. How close the estimate is
    to a real run is a measurement, not a timed test (docs/performance.md: `bench --dry-run` against
    the smoke bench)."""
    plan = _matrix_plan(build_parser().parse_args(ARGS))
    assert len(plan.cells) == 4
    parts = estimate_parts(plan)
    assert parts["encoding"] > 0 and parts["tuning"] > 0 and parts["cells"] > 0  # every overhead is counted
    estimate = estimate_seconds(plan, workers=1)
    bigger = _matrix_plan(build_parser().parse_args([("0,1,2,3" if a == "0,1" else a) for a in ARGS]))
    assert estimate_seconds(bigger, workers=1) > estimate
    assert estimate_seconds(plan, workers=2) < estimate  # two workers share the cells
