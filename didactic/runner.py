"""Many songs: validate, resolve, build stages once, process each song, write the manifest
and ``run.json``. One song's failure is recorded and the others go on."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pyarrow as pa
from omegaconf import DictConfig, OmegaConf

from didactic import __version__, store
from didactic.atomic import write_text
from didactic.config import Config, PrecomputedConf, validate
from didactic.errors import DidacticError
from didactic.pipeline import process_song
from didactic.songs import resolve_songs
from didactic.stages_factory import build_stages

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
    ]
)


@dataclasses.dataclass
class RunSummary:
    """What a run did, for the CLI's last line."""

    run_dir: Path
    ok: int
    failed: int

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def package_versions() -> dict[str, str]:
    out = {"didactic": __version__}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def config_fingerprint(cfg: DictConfig) -> str:
    """SHA-256 of the resolved job config: the same settings give the same fingerprint."""
    text = json.dumps(OmegaConf.to_container(cfg, resolve=True), sort_keys=True, default=str)
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


def run(cfg: DictConfig, run_dir: Path, base_dir: Path) -> RunSummary:
    """Process every song of ``cfg`` into ``run_dir``; ``base_dir`` anchors relative paths."""
    typed = typed_config(cfg)
    songs = resolve_songs(typed.song, base_dir)
    sep = typed.separator
    # A relative stems path is relative to where the command was started; a pattern that
    # starts with a placeholder ({song_dir}/...) is already absolute once filled in.
    if isinstance(sep, PrecomputedConf) and not sep.path.startswith("{"):
        sep.path = str(base_dir / sep.path)
    stages = build_stages(typed)
    versions = package_versions()
    fingerprint = config_fingerprint(cfg)
    meta = store.schema_metadata(fingerprint, versions)

    started = datetime.now(UTC).isoformat()
    rows, song_records = [], []
    for song in songs:
        t0 = time.perf_counter()
        log.info("song %s: %s", song.song_id, song.path)
        try:
            res = process_song(song, typed, stages, run_dir, meta)
        except DidacticError as exc:
            seconds = time.perf_counter() - t0
            stage = getattr(exc, "stage", None) or "load"
            log.error("song %s failed: %s", song.song_id, exc)
            rows.append(
                (
                    song.song_id,
                    str(song.path),
                    "failed",
                    stage,
                    type(exc).__name__,
                    str(exc),
                    seconds,
                )
            )
            continue
        seconds = time.perf_counter() - t0
        rows.append((song.song_id, str(song.path), "ok", None, None, None, seconds))
        song_records.append(dataclasses.asdict(res))
        log.info(
            "song %s: %.1f s audio, %d bars, %d notes in %.1f s (%s)",
            song.song_id,
            res.duration_s,
            res.n_bars,
            res.n_notes,
            seconds,
            ", ".join(f"{k} {v:.2f}" for k, v in res.seconds.items()),
        )

    manifest = pa.Table.from_pylist(
        [dict(zip(MANIFEST_SCHEMA.names, r, strict=True)) for r in rows], schema=MANIFEST_SCHEMA
    )
    store.write_table(manifest.replace_schema_metadata(meta), run_dir / "manifest.parquet")
    ok = sum(r[2] == "ok" for r in rows)
    info = {
        "didactic_version": __version__,
        "versions": versions,
        "config_fingerprint": fingerprint,
        "started": started,
        "finished": datetime.now(UTC).isoformat(),
        "songs_total": len(rows),
        "songs_ok": ok,
        "songs_failed": len(rows) - ok,
        "songs": song_records,
    }
    write_text(run_dir / "run.json", json.dumps(info, indent=2, default=str) + "\n")
    return RunSummary(run_dir, ok, len(rows) - ok)
