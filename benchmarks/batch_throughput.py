"""Batch throughput and sweep cost, printed as ratios.

    .venv/bin/python benchmarks/batch_throughput.py [--songs 12] [--seconds 30]

1. Songs per hour with ``runner.n_jobs=2`` vs ``n_jobs=1`` on a batch of rendered songs
   (``stems=0``, cache off; each run in a fresh process, model and numba warm-up included).
2. The cost of a 3-point ``-m analysis_sr=16000,22050,44100`` sweep vs one run, with the cache on
   (stems and notes are computed once), using the tiny random-weight Demucs from the tests and,
   for a separator as slow as the real htdemucs, a sleep-padded one.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from tiny_demucs import build_tiny_demucs  # noqa: E402

from didactic.synth import SongSpec, render_song, write_song  # noqa: E402


def _run(args: list[str], cwd: Path) -> float:
    env_cmd = [sys.executable, "-m", "didactic", *args]
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}
    subprocess.run(env_cmd, cwd=cwd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--songs", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--skip-sweep", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bars = max(2, round(args.seconds / (4 * 60 / 110)))
        for i in range(args.songs):
            spec = SongSpec(tempo_bpm=90 + 5 * (i % 8), n_bars=bars, seed=i)
            write_song(render_song(spec), root / "songs" / f"s{i:03d}", name=f"song{i:03d}")
        songs = str(root / "songs")
        base = [f"song={songs}", "stems=0", "cache.enabled=false"]
        t1 = _run([*base, "runner.n_jobs=1", "hydra.run.dir=j1"], root)
        t2 = _run([*base, "runner.n_jobs=2", "hydra.run.dir=j2"], root)
        t1s = _run(
            [*base, "runner.n_jobs=1", "runner.threads_per_job=1", "hydra.run.dir=j1s"], root
        )
        print(f"batch: {args.songs} songs of {args.seconds:.0f} s, stems=0")
        print(f"  n_jobs=1: {t1:.1f} s ({3600 * args.songs / t1:.0f} songs/h)")
        print(f"  n_jobs=2: {t2:.1f} s ({3600 * args.songs / t2:.0f} songs/h)")
        print(f"  n_jobs=1 threads_per_job=1: {t1s:.1f} s ({3600 * args.songs / t1s:.0f} songs/h)")
        print(f"  speed-up n_jobs=2 / n_jobs=1: {t1 / t2:.2f}x")
        print(f"  speed-up n_jobs=2 / n_jobs=1 with one thread: {t1s / t2:.2f}x")

        repo = build_tiny_demucs(root / "weights")
        one = root / "songs" / "s000" / "song000.wav"
        if args.skip_sweep:
            return
        for label, sep in (
            ("tiny Demucs", [f"separator.repo={repo}"]),
            (
                "slow separator (3 s per song, like htdemucs on 3 s of audio)",
                [
                    "separator._target_=helpers.SlowSeparator",
                    f"+separator.log_file={root}/c.txt",
                    "+separator.delay_s=3.0",
                ],
            ),
        ):
            cache = root / f"cache-{len(label)}"
            common = [f"song={one}", *sep, f"paths.cache_dir={cache}"]
            single = _run([*common, f"hydra.run.dir=single-{len(label)}"], root)
            cache2 = root / f"cache2-{len(label)}"
            common2 = [f"song={one}", *sep, f"paths.cache_dir={cache2}"]
            sweep = _run(
                [
                    "-m",
                    *common2,
                    "analysis_sr=16000,22050,44100",
                    f"hydra.sweep.dir=sw-{len(label)}",
                ],
                root,
            )
            print(
                f"sweep of 3 analysis_sr values vs one run, {label}: "
                f"{sweep:.1f} s vs {single:.1f} s = {sweep / single:.2f}x"
            )


if __name__ == "__main__":
    main()
