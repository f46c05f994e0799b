"""Place text labels so that no two overlap: a greedy vertical spread of their boxes (display units).
Pure geometry, no matplotlib: figures.py measures the boxes and applies the shifts."""

from __future__ import annotations

from typing import Sequence

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 with x0 <= x1, y0 <= y1


def overlaps(a: Box, b: Box, pad: float = 0.0) -> bool:
    """Whether two boxes overlap once each is grown by pad/2 on every side."""
    return a[0] < b[2] + pad and b[0] < a[2] + pad and a[1] < b[3] + pad and b[1] < a[3] + pad


def spread(boxes: Sequence[Box], pad: float = 2.0) -> list[float]:
    """Upward shifts, one per box, so that no two shifted boxes overlap (with `pad` between them). Boxes are
    placed from the lowest up; one that hits an already placed box moves just above it, and again until it
    is free. Boxes that overlap nothing keep a shift of 0."""
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i][1], boxes[i][0]))
    placed: list[Box] = []
    shifts = [0.0] * len(boxes)
    for i in order:
        x0, y0, x1, y1 = boxes[i]
        dy = 0.0
        moved = True
        while moved:  # each move goes strictly up, past one placed box: at most len(placed) moves
            moved = False
            for other in placed:
                if overlaps((x0, y0 + dy, x1, y1 + dy), other, pad):
                    dy = other[3] + pad - y0
                    moved = True
        shifts[i] = dy
        placed.append((x0, y0 + dy, x1, y1 + dy))
    return shifts
