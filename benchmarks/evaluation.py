"""Musical accuracy on a seeded set of rendered songs: didactic vs the naive grid.

    .venv/bin/python benchmarks/evaluation.py [--songs 40] [--bars 16] [--seed 2026]

Renders ``--songs`` songs with :func:`didactic.evalset.sample_specs` (tempi 60-180 BPM, meters
2/4 3/4 4/4 6/8 12/8, pickups, leading silence, tempo ramps and steps, swing, drumless intros),
runs didactic on them twice - with each song's true meter given through a manifest, and with
``time_signature=auto`` - using the rendered stems (``separator=precomputed``) so that the note
metrics measure Basic Pitch and the grid rather than a separator, then scores both runs with
``task=evaluate``. Prints one Markdown table per run, didactic beside the naive baseline (first
beat = downbeat, 4/4), and the auto run's meter confusion.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from didactic.evalset import MANIFEST, sample_specs, write_eval_set

METRICS = (
    ("beat_f", "beat F"),
    ("cmlt", "CMLt"),
    ("amlt", "AMLt"),
    ("downbeat_f", "downbeat F"),
    ("tempo_acc1", "tempo Acc1"),
    ("tempo_acc2", "tempo Acc2"),
    ("meter_correct", "meter correct"),
    ("grid_bar_acc", "reference notes in the right bar"),
    ("notes_in_right_bar", "transcribed notes in the right bar"),
    ("note_f1", "note onset F1"),
    ("note_f1_offset", "note F1 with offsets"),
)


def _didactic(*args: str, cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "didactic", *args], cwd=cwd, capture_output=True, text=True
    )
    if proc.returncode:
        sys.exit(f"didactic {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def _table(summary: pd.DataFrame) -> str:
    by = summary.set_index("method")
    rows = ["| metric | didactic | baseline |", "| --- | --- | --- |"]
    for col, label in METRICS:
        if col not in by.columns:
            continue
        vals = [by.at[m, col] if m in by.index else float("nan") for m in ("didactic", "baseline")]
        rows.append(f"| {label} | " + " | ".join(f"{float(v):.3f}" for v in vals) + " |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--songs", type=int, default=40)
    ap.add_argument("--bars", type=int, default=16)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="folder to keep songs and runs in")
    ap.add_argument("--only", choices=("given", "auto"), default=None, help="run one mode only")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="didactic-eval-"))
    songs = work / "songs"
    specs = sample_specs(args.songs, seed=args.seed, n_bars=args.bars)
    if not (songs / MANIFEST).is_file():  # --keep a folder to rerun on the same songs
        write_eval_set(specs, songs)
    common = ["separator=precomputed", f"runner.n_jobs={args.jobs}", "cache.enabled=false"]
    for mode, song_arg, extra in (
        ("true meter given", f"song={songs / MANIFEST}", []),
        ("time_signature=auto", f"song={songs}", ["time_signature=auto"]),
    ):
        tag = "given" if extra == [] else "auto"
        if args.only not in (None, tag):
            continue
        run, ev = work / f"run_{tag}", work / f"eval_{tag}"
        secs = _didactic(song_arg, *common, *extra, f"hydra.run.dir={run}", cwd=work)
        _didactic(
            "task=evaluate",
            f"evaluate.run_dir={run}",
            f"evaluate.reference={songs}",
            f"hydra.run.dir={ev}",
            cwd=work,
        )
        summary = pd.read_parquet(ev / "evaluation_summary.parquet")
        what = f"{args.songs} songs of {args.bars} bars, seed {args.seed}"
        print(f"\n### {mode}: {what} (run {secs:.0f} s)")
        print(_table(summary))
        if tag == "auto":
            per = pd.read_parquet(ev / "evaluation.parquet")
            per = per[per["method"] == "didactic"]
            print("\nmeter confusion (reference rows, estimate columns):")
            print(pd.crosstab(per["ref_time_signature"], per["est_time_signature"]).to_string())
    print(f"\nsongs, runs and evaluations in {work}")


if __name__ == "__main__":
    main()
