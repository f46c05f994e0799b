"""Progress display helpers (rich), quiet when output is not a terminal."""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True)


@contextlib.contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; draws a bar on a terminal, prints nothing otherwise."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


class MatrixDisplay:
    """Live matrix progress: cells done / total with ETA, the current cell and its trial/epoch.
    On a terminal it is a rich live display; otherwise one line per cell."""

    def __init__(self, total: int, done: int = 0) -> None:
        self.total, self.done = total, done
        self.live = sys.stderr.isatty()
        self._progress: Progress | None = None
        self._label = ""

    def __enter__(self) -> "MatrixDisplay":
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]matrix[/bold]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[status]}"), console=console)
            self._progress.start()
            self._task = self._progress.add_task("matrix", total=self.total, completed=self.done, status="")
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def cell(self, label: str) -> None:
        repeated, self._label = label == self._label, label
        if self._progress is not None:
            self._progress.update(self._task, status=label)
        elif not repeated:  # one line per cell and phase, not one per tuning trial
            print(f"[{self.done + 1}/{self.total}] {label}", file=sys.stderr, flush=True)

    def detail(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, status=f"{self._label} | {text}")

    def advance(self) -> None:
        self.done += 1
        if self._progress is not None:
            self._progress.advance(self._task)
