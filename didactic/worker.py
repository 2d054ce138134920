"""One song in a worker process (or in the parent when ``n_jobs=1``).

Stages are built once per process and reused for every song of every run in it. A worker
returns everything the parent needs: the outcome for the manifest and the warnings and errors
it logged (worker processes' logs do not reach Hydra's log file, so the parent re-emits them).
The completion record (``state/<song_id>.json``) is written here, after the song's tables: it
is what resume trusts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from didactic import retry, store
from didactic.atomic import write_text
from didactic.cache import StageCache
from didactic.config import Config
from didactic.errors import DidacticError
from didactic.pipeline import SongContext, process_song
from didactic.songs import SongRef
from didactic.stages_factory import Stages, build_stages

log = logging.getLogger(__name__)

_STAGES: dict[str, Stages] = {}
_THREADS: int | None = None


@dataclass
class SongJob:
    """Everything a worker needs for one song; picklable."""

    song: SongRef
    cfg: Config
    groups: dict[str, dict]
    run_dir: Path
    meta: dict[str, str]
    fingerprint: str
    stage_key: str
    threads: int
    cache_dir: str | None
    events: Any = None  # a queue proxy for (pid, song_id, stage) progress events


@dataclass
class SongOutcome:
    """One manifest row plus what the parent shows and logs."""

    song_id: str
    source_path: str
    status: str  # ok | failed
    stage: str | None = None
    error_type: str | None = None
    message: str | None = None
    seconds: float = 0.0
    retries: int = 0  # transient I/O errors retried for this song
    result: dict | None = None
    logs: list[tuple[int, str, str]] = field(default_factory=list)

    def manifest_row(self) -> dict:
        keys = (
            "song_id",
            "source_path",
            "status",
            "stage",
            "error_type",
            "message",
            "seconds",
            "retries",
        )
        return {k: getattr(self, k) for k in keys}


def state_path(run_dir: Path, song_id: str) -> Path:
    return run_dir / "state" / f"{song_id}.json"


def set_threads(threads: int) -> None:
    """Cap torch and BLAS threads of this process (once; later calls with the same value are
    free)."""
    global _THREADS
    if threads == _THREADS:
        return
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)
    _THREADS = threads


def stages_for(job: SongJob) -> Stages:
    """This process's stages for the job's config, built on first use."""
    if job.stage_key not in _STAGES:
        _STAGES[job.stage_key] = build_stages(job.cfg, job.groups, job.threads)
    return _STAGES[job.stage_key]


def clear_song_outputs(run_dir: Path, song_id: str) -> None:
    """Remove whatever an unfinished earlier attempt left for this song."""
    state_path(run_dir, song_id).unlink(missing_ok=True)
    for table in store.TABLES:
        store.table_path(run_dir, table, song_id).unlink(missing_ok=True)
    shutil.rmtree(store.song_dir(run_dir, song_id), ignore_errors=True)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[tuple[int, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelno, record.name, record.getMessage()))


def run_song(job: SongJob, capture_logs: bool = True) -> SongOutcome:
    """Process one song; never raises for a song's own failure."""
    set_threads(job.threads)
    retry.reset()
    song = job.song
    pid = os.getpid()

    def on_stage(stage: str) -> None:
        if job.events is not None:
            job.events.put((pid, song.song_id, stage))

    handler = _Capture()
    root = logging.getLogger()
    if capture_logs:
        root.addHandler(handler)
    t0 = time.perf_counter()
    outcome = SongOutcome(song.song_id, str(song.path), "failed")
    try:
        clear_song_outputs(job.run_dir, song.song_id)
        ctx = SongContext(
            job.cfg,
            stages_for(job),
            job.run_dir,
            job.meta,
            StageCache(Path(job.cache_dir) if job.cache_dir else None),
            job.threads,
            on_stage,
        )
        result = process_song(song, ctx)
        outcome.status = "ok"
        outcome.result = asdict(result)
    except DidacticError as exc:
        outcome.stage = getattr(exc, "stage", None) or "load"
        outcome.error_type = type(exc).__name__
        # Every message names the file; stage errors raised on arrays do not know it.
        msg = str(exc)
        outcome.message = msg if str(song.path) in msg else f"{msg} ({song.path})"
    except Exception as exc:  # a bug or an unexpected library error: keep the others going
        outcome.stage = getattr(exc, "didactic_stage", "internal")
        outcome.error_type = type(exc).__name__
        outcome.message = f"{type(exc).__name__}: {exc}"
        log.error("song %s: unexpected error\n%s", song.song_id, traceback.format_exc())
    finally:
        if capture_logs:
            root.removeHandler(handler)
    if outcome.status != "ok":  # a failed song leaves nothing but its record
        clear_song_outputs(job.run_dir, song.song_id)
    outcome.seconds = time.perf_counter() - t0
    outcome.retries = retry.retries()
    outcome.logs = handler.records
    write_state(job, outcome)
    on_stage("")
    return outcome


def write_state(job: SongJob, outcome: SongOutcome) -> None:
    """The song's completion record: written last, it is what resume trusts."""
    record = {**outcome.manifest_row(), "fingerprint": job.fingerprint, "result": outcome.result}
    write_text(state_path(job.run_dir, job.song.song_id), json.dumps(record, default=str))
