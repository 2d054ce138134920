"""What a person watching a run sees: rich bars on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


class PlainProgress:
    """One log line per finished song, with counts and an ETA."""

    def __init__(self, total: int, skipped: int) -> None:
        self.total, self.done, self.failed, self.skipped = total, 0, 0, skipped
        self.t0 = time.monotonic()

    def worker(self, pid: int, song_id: str, stage: str) -> None:
        del pid, song_id, stage

    def finished(self, song_id: str, ok: bool, seconds: float) -> None:
        self.done += ok
        self.failed += not ok
        n = self.done + self.failed
        todo = self.total - self.skipped
        eta = (time.monotonic() - self.t0) / n * (todo - n) if n else 0.0
        log.info(
            "[%d/%d] %s %s in %.1f s (ok %d, failed %d, skipped %d; ETA %.0f s)",
            n + self.skipped,
            self.total,
            song_id,
            "ok" if ok else "FAILED",
            seconds,
            self.done,
            self.failed,
            self.skipped,
            eta,
        )

    @contextmanager
    def live(self) -> Iterator[PlainProgress]:
        yield self

    def summary(self, rows: list[tuple[str, str]]) -> None:
        """The end-of-run table; plain mode has it in the summary log line already."""
        del rows


class RichProgress(PlainProgress):
    """An overall songs bar with counts and ETA, and a line per worker: its song and stage.
    Log lines are printed above the bars through the same console."""

    def __init__(self, total: int, skipped: int) -> None:
        super().__init__(total, skipped)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console(stderr=True)
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task = self.bar.add_task(
            "songs", total=total, completed=skipped, counts=self._counts()
        )
        self.workers: dict[int, int] = {}

    def _counts(self) -> str:
        return f"ok {self.done} failed {self.failed} skipped {self.skipped}"

    def worker(self, pid: int, song_id: str, stage: str) -> None:
        if pid not in self.workers:
            self.workers[pid] = self.bar.add_task(f"  worker {pid}", total=None, counts="")
        text = f"{song_id}: {stage}" if stage else "idle"
        self.bar.update(self.workers[pid], counts=text)

    def finished(self, song_id: str, ok: bool, seconds: float) -> None:
        self.done += ok
        self.failed += not ok
        self.bar.update(self.task, advance=1, counts=self._counts())
        if not ok:
            log.warning("%s FAILED after %.1f s", song_id, seconds)

    @contextmanager
    def live(self) -> Iterator[RichProgress]:
        from rich.logging import RichHandler

        root = logging.getLogger()
        consoles = [
            h
            for h in root.handlers
            if type(h) is logging.StreamHandler and getattr(h, "stream", None) is sys.stderr
        ]
        rich_handler = RichHandler(console=self.console, show_path=False, markup=False)
        rich_handler.setLevel(min((h.level for h in consoles), default=logging.INFO))
        for h in consoles:
            root.removeHandler(h)
        root.addHandler(rich_handler)
        try:
            with self.bar:
                yield self
        finally:
            root.removeHandler(rich_handler)
            for h in consoles:
                root.addHandler(h)

    def summary(self, rows: list[tuple[str, str]]) -> None:
        from rich.table import Table

        table = Table(title="didactic run", show_header=False)
        for key, value in rows:
            table.add_row(key, value)
        self.console.print(table)


def make_progress(mode: str, total: int, skipped: int) -> PlainProgress:
    """``rich`` bars when asked for, or on ``auto`` when stderr is a terminal."""
    if mode == "rich" or (mode == "auto" and sys.stderr.isatty()):
        return RichProgress(total, skipped)
    return PlainProgress(total, skipped)
