"""Many songs: validate, resolve, resume, spread songs over workers, record what happened.

- Songs run in ``runner.n_jobs`` worker processes (:mod:`didactic.pool`);
  each worker gets ``threads_per_job`` torch/BLAS/onnxruntime threads, by default
  ``cores // n_jobs``, so workers x threads stay within the cores.
- A failed song is recorded and the others go on; ``runner.max_failures`` stops a run that
  fails wholesale.
- Rerunning with the same run directory skips songs whose completion record matches the
  config and redoes the rest; a song interrupted at any point (even by SIGKILL) is redone from
  scratch, and no partial file is ever visible under a final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pyarrow as pa
import soundfile as sf
from omegaconf import DictConfig, OmegaConf

from didactic import __version__, store
from didactic.atomic import TMP_MARK, write_text
from didactic.cache import StageCache
from didactic.config import EXECUTION_KEYS, Config, PrecomputedConf, parse_meter, validate
from didactic.errors import ConfigError
from didactic.pipeline import STAGES
from didactic.pool import get_pool
from didactic.progress import PlainProgress, make_progress
from didactic.songs import SongRef, resolve_songs
from didactic.stages_factory import build_stages, stage_groups
from didactic.worker import SongJob, SongOutcome

log = logging.getLogger(__name__)

VERSIONED_PACKAGES = (
    "numpy",
    "librosa",
    "soxr",
    "soundfile",
    "torch",
    "demucs",
    "basic-pitch",
    "onnxruntime",
    "pretty_midi",
    "pyarrow",
    "hydra-core",
)

MANIFEST_SCHEMA = pa.schema(
    [
        ("song_id", pa.string()),
        ("source_path", pa.string()),
        ("status", pa.string()),
        ("stage", pa.string()),
        ("error_type", pa.string()),
        ("message", pa.string()),
        ("seconds", pa.float64()),
        ("retries", pa.int32()),
    ]
)

# Stages whose repeated failure means the model, not the songs, is broken.
BREAKER_STAGES = ("separate", "transcribe")


@dataclass
class RunSummary:
    """What a run did, for the CLI's last line."""

    run_dir: Path
    ok: int
    failed: int
    pending: int = 0

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.pending else 0


def package_versions() -> dict[str, str]:
    out = {"didactic": __version__}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def config_fingerprint(cfg: DictConfig) -> str:
    """SHA-256 of the resolved config that determines the results (execution settings such as
    ``runner`` and ``paths`` left out): the same settings give the same fingerprint."""
    data = OmegaConf.to_container(cfg, resolve=True)
    for key in EXECUTION_KEYS:
        data.pop(key, None)
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def typed_config(cfg: DictConfig) -> Config:
    """The composed config as schema objects, with every range and rule checked."""
    from didactic.cli import config_error_from

    try:
        typed = OmegaConf.to_object(cfg)
    except Exception as exc:  # missing mandatory values and type errors
        raise config_error_from(exc) from None
    validate(typed)
    return typed


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run(cfg: DictConfig, run_dir: Path, base_dir: Path) -> RunSummary:
    """Process every song of ``cfg`` into ``run_dir``; ``base_dir`` anchors relative paths."""
    typed = typed_config(cfg)
    songs = resolve_songs(typed.song, base_dir)
    for s in songs:
        if s.time_signature:
            parse_meter(s.time_signature, key=f"song[{s.song_id}].time_signature")
    sep = typed.separator
    # A relative stems path is relative to where the command was started; a pattern that
    # starts with a placeholder ({song_dir}/...) is already absolute once filled in.
    if isinstance(sep, PrecomputedConf) and not sep.path.startswith("{"):
        sep.path = str(base_dir / sep.path)
    fingerprint = config_fingerprint(cfg)
    done = _completed(run_dir, fingerprint)
    _remove_temp_files(run_dir)

    n_jobs = min(typed.runner.n_jobs, max(1, len(songs) - len(done)))
    threads = typed.runner.threads_per_job or max(1, available_cores() // n_jobs)
    # Built here once although workers build their own: missing weights or a bad _target_
    # stop the run before any work.
    groups = stage_groups(cfg)
    stages = build_stages(typed, groups, threads)
    del stages  # workers build their own; this copy only proved the config loads
    # Workers keep stages by what builds them, so sweep jobs that differ only in analysis
    # settings reuse the loaded models.
    stage_key = hashlib.sha256(
        json.dumps(
            [groups, typed.stems, typed.device, typed.seed, threads], sort_keys=True, default=str
        ).encode()
    ).hexdigest()
    versions = package_versions()
    meta = store.schema_metadata(fingerprint, versions)
    cache_dir = str(Path(typed.paths.cache_dir).expanduser()) if typed.cache.enabled else None
    if cache_dir:
        StageCache(Path(cache_dir)).remove_stale_temp()

    todo = [s for s in songs if s.song_id not in done]
    if done:
        log.info("resuming %s: %d of %d songs already complete", run_dir, len(done), len(songs))
    jobs = [
        SongJob(s, typed, groups, run_dir, meta, fingerprint, stage_key, threads, cache_dir)
        for s in todo
    ]
    started = datetime.now(UTC).isoformat()
    t0 = time.perf_counter()
    outcomes: dict[str, SongOutcome] = {}
    progress = make_progress(typed.runner.progress, len(songs), len(done))
    interrupted = False
    queue_ = deque(jobs)
    breakers = Breakers(typed.runner.breaker_failures)
    outcomes_iter = get_pool(n_jobs).run(queue_, _stage_deadline, progress.worker)
    try:
        with progress.live():
            for outcome in outcomes_iter:
                outcomes[outcome.song_id] = outcome
                _relog(outcome)
                progress.finished(outcome.song_id, outcome.status == "ok", outcome.seconds)
                opened = breakers.record(outcome)
                if opened:
                    reason = (
                        f"not run: the {opened} stage failed {breakers.limit} songs in a row "
                        f"(circuit breaker, runner.breaker_failures={breakers.limit})"
                    )
                    log.error("%s; skipping the %d songs left", reason, len(queue_))
                    while queue_:
                        job = queue_.popleft()
                        outcomes[job.song.song_id] = SongOutcome(
                            job.song.song_id,
                            str(job.song.path),
                            "skipped",
                            opened,
                            "CircuitOpen",
                            reason,
                        )
                failures = sum(o.status == "failed" for o in outcomes.values())
                limit = typed.runner.max_failures
                if limit is not None and failures >= limit:
                    log.error("stopping: %d songs failed (runner.max_failures=%d)", failures, limit)
                    break
    except KeyboardInterrupt:
        interrupted = True
        log.warning("interrupted: stopping workers")
    finally:
        outcomes_iter.close()  # stops workers still busy (max_failures) and the event manager
        _remove_temp_files(run_dir)
        summary = _write_records(
            run_dir,
            songs,
            done,
            outcomes,
            fingerprint,
            versions,
            meta,
            started,
            time.perf_counter() - t0,
            progress,
            breakers.state(),
        )
    if interrupted:
        raise KeyboardInterrupt
    return summary


class Breakers:
    """A circuit breaker per model stage: after ``limit`` consecutive songs failed in that
    stage, it opens and the run stops calling the stage. A bad input file (``AudioError``)
    is not the model's failure and does not count; a song that got past the stage resets it."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.consecutive = dict.fromkeys(BREAKER_STAGES, 0)
        self.open: str | None = None

    def record(self, outcome: SongOutcome) -> str | None:
        """Count an outcome; return the stage whose breaker this outcome opened, if any."""
        if self.limit is None or self.open:
            return None
        for stage in BREAKER_STAGES:
            if outcome.status == "failed" and outcome.stage == stage:
                if outcome.error_type != "AudioError":
                    self.consecutive[stage] += 1
            elif _passed(outcome, stage):
                self.consecutive[stage] = 0
            if self.consecutive[stage] >= self.limit:
                self.open = stage
                return stage
        return None

    def state(self) -> dict:
        return {"limit": self.limit, "open": self.open, "consecutive_failures": self.consecutive}


def _passed(outcome: SongOutcome, stage: str) -> bool:
    if outcome.status == "ok":
        return True
    return outcome.stage in STAGES and STAGES.index(outcome.stage) > STAGES.index(stage)


def _stage_deadline(job: SongJob, stage: str) -> float | None:
    """A model stage's timeout: ``timeout_s`` plus ``timeout_per_audio_minute_s`` per minute of
    audio. Other stages (pure computation on the song's own audio) have none."""
    # "setup" is a worker building its stages (loading models) before the song's first stage:
    # a stalled model download is held to the separator's deadline too.
    group = {
        "setup": job.cfg.separator,
        "separate": job.cfg.separator,
        "transcribe": job.cfg.transcriber,
    }.get(stage)
    if group is None:
        return None
    per_minute = group.timeout_per_audio_minute_s
    if not per_minute:
        return group.timeout_s
    try:
        minutes = sf.info(job.song.path).duration / 60
    except Exception:  # unreadable header: the song fails in load, before any model stage
        minutes = 0.0
    return group.timeout_s + per_minute * minutes


def _relog(outcome: SongOutcome) -> None:
    """Re-emit a worker's warnings and errors here, where Hydra's log file is attached."""
    for level, name, message in outcome.logs:
        logging.getLogger(name).log(level, "[%s] %s", outcome.song_id, message)
    if outcome.status != "ok":
        log.error("song %s failed in %s: %s", outcome.song_id, outcome.stage, outcome.message)
    elif outcome.result:
        r = outcome.result
        log.info(
            "song %s: %.1f s audio, %d bars, %d notes (%s)",
            outcome.song_id,
            r["duration_s"],
            r["n_bars"],
            r["n_notes"],
            ", ".join(f"{k} {v:.2f} s" for k, v in r["seconds"].items()),
        )


def _completed(run_dir: Path, fingerprint: str) -> dict[str, dict]:
    """Completion records of songs finished earlier in this run directory."""
    folder = run_dir / "state"
    done: dict[str, dict] = {}
    if not folder.is_dir():
        return done
    for path in sorted(folder.glob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # unreadable: the song is redone
        if rec.get("fingerprint") != fingerprint:
            raise ConfigError(
                "hydra.run.dir",
                str(run_dir),
                "a new run directory: this one holds results made with another config",
            )
        if rec.get("status") == "ok":
            done[rec["song_id"]] = rec
    return done


def _remove_temp_files(run_dir: Path) -> None:
    """Delete temporary files a killed or interrupted worker left behind."""
    if not run_dir.is_dir():
        return
    for path in run_dir.rglob(f"*{TMP_MARK}*"):
        with contextlib.suppress(OSError):
            path.unlink()


def _write_records(
    run_dir: Path,
    songs: list[SongRef],
    done: dict[str, dict],
    outcomes: dict[str, SongOutcome],
    fingerprint: str,
    versions: dict[str, str],
    meta: dict[str, str],
    started: str,
    wall_s: float,
    progress: PlainProgress,
    breakers: dict,
) -> RunSummary:
    """manifest.parquet (one row per song of the run) and run.json."""
    rows, records = [], []
    for s in songs:
        if s.song_id in outcomes:
            o = outcomes[s.song_id]
            rows.append(o.manifest_row())
            if o.result:
                records.append(o.result)
        elif s.song_id in done:
            rec = done[s.song_id]
            rows.append({k: rec.get(k) for k in MANIFEST_SCHEMA.names})
            if rec.get("result"):
                records.append(rec["result"])
        else:
            rows.append(
                {
                    "song_id": s.song_id,
                    "source_path": str(s.path),
                    "status": "pending",
                    "stage": None,
                    "error_type": None,
                    "message": "not processed",
                    "seconds": 0.0,
                }
            )
    manifest = pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)
    run_dir.mkdir(parents=True, exist_ok=True)
    store.write_table(manifest.replace_schema_metadata(meta), run_dir / "manifest.parquet")
    counts = {
        k: sum(r["status"] == k for r in rows) for k in ("ok", "failed", "skipped", "pending")
    }
    audio_s = sum(r.get("duration_s", 0.0) for r in records)
    stage_totals: dict[str, float] = {}
    for r in records:
        for k, v in r.get("seconds", {}).items():
            stage_totals[k] = stage_totals.get(k, 0.0) + v
    info = {
        "didactic_version": __version__,
        "versions": versions,
        "config_fingerprint": fingerprint,
        "started": started,
        "finished": datetime.now(UTC).isoformat(),
        "songs_total": len(rows),
        "songs_ok": counts["ok"],
        "songs_failed": counts["failed"],
        "songs_pending": counts["pending"],
        "songs_skipped": counts["skipped"],
        "retries": sum(int(r.get("retries") or 0) for r in rows),
        "circuit_breakers": breakers,
        "songs_resumed": len(done),
        "audio_hours": audio_s / 3600,
        "wall_s": wall_s,
        "stage_seconds": stage_totals,
        "songs": records,
    }
    write_text(run_dir / "run.json", json.dumps(info, indent=2, default=str) + "\n")
    progress.summary(_log_summary(info))
    return RunSummary(run_dir, counts["ok"], counts["failed"], counts["pending"])


def _log_summary(info: dict) -> list[tuple[str, str]]:
    """Log the run's summary line; return it as table rows."""
    audio_h, wall = info["audio_hours"], info["wall_s"]
    slowest = max(info["stage_seconds"].items(), key=lambda kv: kv[1], default=("-", 0.0))
    rtf = audio_h * 3600 / wall if wall > 0 else float("nan")
    log.info(
        "summary: %d songs: %d ok (%d of them from an earlier attempt), %d failed, %d pending; "
        "%.3f h of audio in %.1f s (%.1fx real time); slowest stage: %s (%.1f s)",
        info["songs_total"],
        info["songs_ok"],
        info["songs_resumed"],
        info["songs_failed"],
        info["songs_pending"],
        audio_h,
        wall,
        rtf,
        slowest[0],
        slowest[1],
    )
    return [
        ("songs", str(info["songs_total"])),
        ("ok", str(info["songs_ok"])),
        ("failed", str(info["songs_failed"])),
        ("skipped (already complete)", str(info["songs_resumed"])),
        ("skipped (circuit breaker)", str(info["songs_skipped"])),
        ("not processed", str(info["songs_pending"])),
        ("I/O retries", str(info["retries"])),
        ("audio", f"{audio_h:.3f} h"),
        ("wall time", f"{wall:.1f} s"),
        ("real-time factor", f"{rtf:.1f}x"),
        ("slowest stage", f"{slowest[0]} ({slowest[1]:.1f} s)"),
    ]
