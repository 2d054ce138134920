"""Sweeps: a summary across a multirun's jobs, and reading their tables together.

The :class:`SweepSummary` Hydra callback writes ``sweep_summary.parquet`` (and ``.csv``) in the
sweep directory when a multirun ends: one row per job with its overrides, status, song counts
and seconds. :func:`read_sweep` reads one table of every job into one DataFrame with the
overrides as columns.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from didactic.atomic import write_bytes, write_text

log = logging.getLogger(__name__)


def _job_dirs(sweep_dir: Path) -> list[Path]:
    dirs = [p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml")]
    return sorted(dirs, key=lambda p: (len(p.name), p.name))


def _overrides(job_dir: Path) -> dict[str, str]:
    items = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text()) or []
    out = {}
    for item in items:
        key, _, value = str(item).partition("=")
        if not key.startswith("hydra."):
            out[key.lstrip("+~")] = value
    return out


def sweep_summary(sweep_dir: Path) -> pd.DataFrame:
    """One row per job of a sweep: job, overrides, status, songs, seconds."""
    rows = []
    for job in _job_dirs(sweep_dir):
        row: dict[str, Any] = {"job": job.name, "run_dir": str(job), **_overrides(job)}
        info_path = job / "run.json"
        evaluation = job / "evaluation_summary.parquet"  # a task=evaluate job
        if evaluation.is_file():
            ev = pd.read_parquet(evaluation)
            n = int(ev["n_songs"].max()) if len(ev) else 0
            row.update(status="ok", songs=n, songs_ok=n, songs_failed=0, seconds=float("nan"))
        elif info_path.is_file():
            info = json.loads(info_path.read_text())
            row.update(
                status="ok"
                if info["songs_failed"] == 0 and info["songs_pending"] == 0
                else "failed",
                songs=info["songs_total"],
                songs_ok=info["songs_ok"],
                songs_failed=info["songs_failed"],
                seconds=info["wall_s"],
            )
        else:
            row.update(status="failed", songs=0, songs_ok=0, songs_failed=0, seconds=0.0)
        rows.append(row)
    return pd.DataFrame(rows)


def read_sweep(sweep_dir: str | Path, table: str) -> pd.DataFrame:
    """``table`` of every job of a sweep in one frame, with ``job`` and the overrides as
    columns (a plain run directory works too: it is a sweep of one job)."""
    sweep_dir = Path(sweep_dir)
    jobs = _job_dirs(sweep_dir) or [sweep_dir]
    frames = []
    for job in jobs:
        folder = job / "tables" / table
        if not folder.is_dir():
            continue
        df = ds.dataset(folder).to_table().to_pandas()
        overrides = _overrides(job) if (job / ".hydra" / "overrides.yaml").is_file() else {}
        for key, value in {"job": job.name, **overrides}.items():
            df[key] = value
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


class SweepSummary(Callback):
    """Hydra callback: write the sweep summary when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        df = sweep_summary(sweep_dir)
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf)
        write_bytes(sweep_dir / "sweep_summary.parquet", buf.getvalue())
        write_text(sweep_dir / "sweep_summary.csv", df.to_csv(index=False))
        log.info("sweep summary (%d jobs) in %s", len(df), sweep_dir / "sweep_summary.parquet")
