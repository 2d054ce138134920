"""Seconds per stage on a rendered song, with stems=0 and with a tiny random-weight Demucs.

    .venv/bin/python benchmarks/stage_costs.py [--minutes 3]

Prints one table: the stage timings from each run's run.json (the first run in a fresh
environment also pays numba compilation; run twice for steady numbers).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from tiny_demucs import build_tiny_demucs  # noqa: E402

from didactic.synth import SongSpec, render_song, write_song  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=3.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        bars = round(args.minutes * 60 / (4 * 60 / 112))
        song = render_song(SongSpec(tempo_bpm=112, n_bars=bars, seed=11))
        mix = write_song(song, tmp_path, name="bench")["mix"]
        repo = build_tiny_demucs(tmp_path / "weights")
        runs = {"stems=0": ["stems=0"], "stems=4 tiny": ["stems=4", f"separator.repo={repo}"]}
        timings = {}
        for label, extra in runs.items():
            out = tmp_path / label.replace(" ", "_").replace("=", "")
            cmd = [
                sys.executable,
                "-m",
                "didactic",
                f"song={mix}",
                f"hydra.run.dir={out}",
                *extra,
            ]
            subprocess.run(cmd, check=True, capture_output=True)
            timings[label] = json.loads((out / "run.json").read_text())["songs"][0]["seconds"]
        stages = list(next(iter(timings.values())))
        print(f"song: {song.duration_s:.0f} s, 44.1 kHz stereo")
        print(f"{'stage':<12}" + "".join(f"{k:>14}" for k in timings))
        for s in stages:
            print(f"{s:<12}" + "".join(f"{t.get(s, 0.0):>14.2f}" for t in timings.values()))
        print(f"{'total':<12}" + "".join(f"{sum(t.values()):>14.2f}" for t in timings.values()))


if __name__ == "__main__":
    main()
