"""Worker processes that take one song at a time, and are killed and replaced when a song's
stage runs past its timeout or the process dies.

joblib's loky pool cannot stop one hung task without tearing down every worker, so the runner
supervises its own: each worker has its own task queue (the parent always knows which song it
holds), reports each stage as it starts, and is ``SIGKILL``-ed when that stage's deadline
passes. Workers are started with ``spawn`` (forking a process that already runs torch or numba
threads is unsafe) and live for the whole process, so their models stay loaded across runs and
sweep jobs.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import pickle
import queue
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from didactic.worker import (
    SongJob,
    SongOutcome,
    clear_song_outputs,
    run_song,
    set_threads,
    write_state,
)

log = logging.getLogger(__name__)

POLL_S = 0.1


class _QueueEvents:
    """Stage events from a worker to the parent, on the shared result queue."""

    def __init__(self, results: Any, wid: int) -> None:
        self.results, self.wid = results, wid

    def put(self, item: tuple[int, str, str]) -> None:
        _, song_id, stage = item
        self.results.put(("stage", self.wid, song_id, stage))


def _worker_main(wid: int, tasks: Any, results: Any) -> None:
    # Ctrl-C is the parent's to handle: it stops and replaces workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        job = tasks.get()
        if job is None:
            return
        job.events = _QueueEvents(results, wid)
        set_threads(job.threads)  # imports torch: start-up, not the song's time
        # From here the song is held to a deadline: building stages loads the models.
        job.events.put((0, job.song.song_id, "setup"))
        results.put(("done", wid, run_song(job)))


@dataclass
class _Worker:
    wid: int
    proc: Any
    tasks: Any
    job: SongJob | None = None
    stage: str = ""
    stage_started: float = field(default_factory=time.monotonic)


class WorkerPool:
    """``n`` worker processes; :meth:`run` yields outcomes as songs finish."""

    def __init__(self, n: int) -> None:
        self.ctx = mp.get_context("spawn")
        self.results = self.ctx.Queue()
        self.n = n
        self._next = 0
        self.workers: dict[int, _Worker] = {}
        for _ in range(n):
            self._start()

    def _start(self) -> _Worker:
        wid, self._next = self._next, self._next + 1
        tasks = self.ctx.Queue()
        proc = self.ctx.Process(
            target=_worker_main,
            args=(wid, tasks, self.results),
            name=f"didactic-worker-{wid}",
            daemon=True,
        )
        proc.start()
        self.workers[wid] = w = _Worker(wid, proc, tasks)
        return w

    def _replace(self, w: _Worker) -> None:
        with contextlib.suppress(Exception):
            w.proc.kill()
            w.proc.join(timeout=10)
        del self.workers[w.wid]
        self._start()

    def alive(self) -> bool:
        return all(w.proc.is_alive() for w in self.workers.values())

    def run(
        self,
        todo: deque[SongJob],
        deadline: Callable[[SongJob, str], float | None],
        on_stage: Callable[[int, str, str], None],
    ) -> Iterator[SongOutcome]:
        """Run the jobs in ``todo`` (which the caller may shorten while this runs, to stop
        dispatching); ``deadline(job, stage)`` gives a stage's timeout in seconds (or None).

        A worker past its deadline is killed and replaced and its song reported as failed with
        ``StageTimeout``; a worker that dies is reported with ``WorkerDied``. Closing the
        generator early (Ctrl-C, max_failures) kills the busy workers.
        """
        try:
            while todo or any(w.job is not None for w in self.workers.values()):
                for w in list(self.workers.values()):
                    if w.job is None and todo:
                        w.job, w.stage, w.stage_started = todo.popleft(), "", time.monotonic()
                        w.tasks.put(w.job)
                try:
                    msg = self.results.get(timeout=POLL_S)
                except queue.Empty:
                    msg = None
                except (EOFError, OSError, pickle.UnpicklingError) as exc:
                    # A worker killed while writing to the queue can leave a torn message.
                    log.warning("dropped an unreadable message from a worker (%s)", exc)
                    msg = None
                if msg is not None:
                    outcome = self._handle(msg, on_stage)
                    if outcome is not None:
                        yield outcome
                for outcome in self._check(deadline):
                    yield outcome
        finally:
            for w in list(self.workers.values()):
                if w.job is not None:  # stopped early: the song is redone next time
                    job, w.job = w.job, None
                    self._replace(w)
                    clear_song_outputs(job.run_dir, job.song.song_id)

    def _handle(self, msg: tuple, on_stage: Callable[[int, str, str], None]) -> SongOutcome | None:
        kind, wid = msg[0], msg[1]
        w = self.workers.get(wid)
        if kind == "stage":
            _, _, song_id, stage = msg
            if w is not None and w.job is not None and w.job.song.song_id == song_id:
                w.stage, w.stage_started = stage, time.monotonic()
            on_stage(wid, song_id, stage)
            return None
        outcome: SongOutcome = msg[2]
        if w is not None and w.job is not None and w.job.song.song_id == outcome.song_id:
            w.job, w.stage = None, ""
            return outcome
        return None  # a late message from a worker that was already replaced

    def _check(self, deadline: Callable[[SongJob, str], float | None]) -> Iterator[SongOutcome]:
        now = time.monotonic()
        for w in list(self.workers.values()):
            job = w.job
            if job is None:
                continue
            if not w.proc.is_alive():
                code = w.proc.exitcode
                yield self._fail(w, "WorkerDied", f"worker process died (exit code {code})")
                continue
            limit = deadline(job, w.stage)
            if limit is not None and now - w.stage_started > limit:
                yield self._fail(
                    w,
                    "StageTimeout",
                    f"{w.stage} error: {job.song.path}: ran past its timeout of {limit:.0f} s "
                    "(the worker was stopped)",
                )

    def _fail(self, w: _Worker, error_type: str, message: str) -> SongOutcome:
        job = w.job
        assert job is not None
        stage = w.stage or "load"
        elapsed = time.monotonic() - w.stage_started
        log.warning(
            "song %s: %s in %s; replacing worker %d", job.song.song_id, error_type, stage, w.wid
        )
        w.job = None
        self._replace(w)
        clear_song_outputs(job.run_dir, job.song.song_id)
        outcome = SongOutcome(
            job.song.song_id, str(job.song.path), "failed", stage, error_type, message, elapsed
        )
        write_state(job, outcome)
        return outcome

    def close(self) -> None:
        """Ask idle workers to exit; kill any that do not."""
        for w in list(self.workers.values()):
            with contextlib.suppress(Exception):
                w.tasks.put(None)
        for w in list(self.workers.values()):
            w.proc.join(timeout=5)
            if w.proc.is_alive():
                w.proc.kill()
        self.workers.clear()


_POOL: WorkerPool | None = None


def get_pool(n: int) -> WorkerPool:
    """This process's pool of ``n`` workers, reused across runs (and sweep jobs) while alive."""
    global _POOL
    if _POOL is not None and (_POOL.n != n or not _POOL.alive()):
        _POOL.close()
        _POOL = None
    if _POOL is None:
        _POOL = WorkerPool(n)
    return _POOL


def shutdown_pool() -> None:
    global _POOL
    if _POOL is not None:
        _POOL.close()
        _POOL = None
