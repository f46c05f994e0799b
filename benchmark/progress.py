"""Progress display helpers (rich), quiet when output is not a terminal."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


QUIET_PROGRESS_EVERY_S = 30.0  # off a terminal, long work prints its count this often


@contextlib.contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; draws a bar on a terminal; otherwise prints "description: k/N" at most
    every QUIET_PROGRESS_EVERY_S seconds (a long encoding is never silent in a log file)."""
    if not sys.stderr.isatty():
        done, last = 0, time.monotonic()

        def advance(n: int) -> None:
            nonlocal done, last
            done += n
            if time.monotonic() - last >= QUIET_PROGRESS_EVERY_S and done < total:
                last = time.monotonic()
                print(f"{description}: {done}/{total}", file=sys.stderr, flush=True)

        yield advance
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def format_eta(seconds: float | None) -> str:
    """An ETA for a progress line: "ETA 12 min", "ETA 40 s", or "ETA ?" before anything finished."""
    if seconds is None:
        return "ETA ?"
    return f"ETA {seconds:.0f} s" if seconds < 90 else f"ETA {seconds / 60:.0f} min"


class MatrixDisplay:
    """Live matrix progress, matrix-wide: cells done of all of them, whoever ran them, with an ETA
    from the measured pace. ``sync`` takes the done units (as the stores and the finished Ray tasks
    say, every process's); the count only grows. On a terminal a rich live display also shows the
    current unit; otherwise one line per finished cell, ``[k/N] label · ETA``. ``quiet``: nothing at
    all.

    The ETA: units (trial slots and cells) still to do, divided by the units finished per second
    since this display started (by any worker)."""

    def __init__(self, cell_labels: dict[str, str], total_units: int, quiet: bool = False) -> None:
        self.cell_labels = cell_labels  # cell unit -> label, every cell of the matrix
        self.total, self.total_units = len(cell_labels), total_units
        self.quiet = quiet
        self.live = sys.stderr.isatty() and not quiet
        self._order = {unit: k for k, unit in enumerate(cell_labels)}  # plan order, to print new cells in
        self._seen: set[str] | None = None  # cell units known done
        self._units_at_start: int | None = None
        self._started = time.monotonic()
        self._units_done = 0
        self._progress: Progress | None = None
        self._label = ""

    def __enter__(self) -> "MatrixDisplay":
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]matrix[/bold]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.fields[eta]}"), TextColumn("{task.fields[status]}"), console=console)
            self._progress.start()
            self._task = self._progress.add_task("matrix", total=self.total, completed=self.done, status="",
                                                 eta=format_eta(None))
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    @property
    def done(self) -> int:
        """Cells of the matrix known done (by any worker)."""
        return len(self._seen or ())

    def eta_seconds(self) -> float | None:
        """Seconds left at the pace measured since the display started; None before any unit finished."""
        finished = self._units_done - (self._units_at_start or 0)
        if finished <= 0:
            return None
        pace = (time.monotonic() - self._started) / finished
        return pace * max(0, self.total_units - self._units_done)

    def sync(self, done_units: set[str]) -> None:
        """Take the done units (trial slots and cells of every process); print each cell that
        finished since the last call (off a terminal) and move the counter and the ETA."""
        cells = {u for u in done_units if u in self.cell_labels}
        self._units_done = len(done_units)
        if self._seen is None:
            self._units_at_start, self._seen = self._units_done, cells
        new = sorted(cells - self._seen, key=self._order.__getitem__)
        for unit in new:
            self._seen.add(unit)
            if not self.live and not self.quiet:
                print(f"[{self.done}/{self.total}] {self.cell_labels[unit]} · {format_eta(self.eta_seconds())}",
                      file=sys.stderr, flush=True)
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done, eta=format_eta(self.eta_seconds()))

    def cell(self, label: str) -> None:
        """The unit being worked on (shown on a terminal only)."""
        self._label = label
        if self._progress is not None:
            self._progress.update(self._task, status=label)

    def detail(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, status=f"{self._label} | {text}")
