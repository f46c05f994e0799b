"""Scatter-plot labels never print over each other: the greedy spread (pure geometry) and the labels
that the cost figures actually draw, measured on a real matplotlib canvas."""

from __future__ import annotations

import itertools

import pandas as pd

from benchmark.reporting.labels import overlaps, spread


def _shifted(boxes, shifts):
    return [(x0, y0 + d, x1, y1 + d) for (x0, y0, x1, y1), d in zip(boxes, shifts)]


def test_spread_separates_identical_and_chained_boxes():
    boxes = [(0, 0, 50, 10)] * 3 + [(40, 5, 90, 15), (200, 0, 250, 10)]
    shifts = spread(boxes, pad=2)
    placed = _shifted(boxes, shifts)
    for a, b in itertools.combinations(placed, 2):
        assert not overlaps(a, b)
    assert shifts[4] == 0  # a box far from the others stays where it is
    assert min(shifts) == 0 and all(s >= 0 for s in shifts)  # only upward moves
    # the three identical boxes end up stacked 12 apart (height 10 + pad 2)
    assert sorted(shifts[:3])[:2] == [0, 12]


def test_spread_leaves_separate_boxes_alone():
    boxes = [(0, 0, 10, 10), (0, 20, 10, 30), (20, 0, 30, 10)]
    assert spread(boxes) == [0, 0, 0]


def test_cost_figure_labels_do_not_overlap():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmark.reporting.figures import _label_points

    # four configurations at almost the same place (what printed two names over each other before)
    points = pd.DataFrame({"variant": ["concat", "concat", "late_weighted", "film"], "dropout": ["0", "0.3", "0", "0"],
                           "infer_sps": [50000.0, 50500.0, 51000.0, 49000.0], "accuracy": [0.80, 0.801, 0.799, 0.80]})
    fig, ax = plt.subplots(figsize=(8.5, 5.6))
    ax.scatter(points["infer_sps"], points["accuracy"])
    ax.set_xscale("log")
    _label_points(ax, points, "infer_sps", "accuracy", log=True)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in ax.texts]
    assert len(texts) == 4
    boxes = [tuple(t.get_window_extent(renderer).extents) for t in texts]
    for a, b in itertools.combinations(boxes, 2):
        assert not overlaps(a, b), (a, b)
    plt.close(fig)
