"""A seeded set of synthetic songs with reference annotations, for ``task=evaluate``.

Each song is rendered by :mod:`didactic.synth` (exact truth) and written with its audio, stems
and MIDI, plus the beat and downbeat files :mod:`didactic.reference` reads, so the folder is
both a run's input and its reference.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from didactic.atomic import write_text
from didactic.synth import RenderedSong, SongSpec, parse_time_signature, render_song, write_song

log = logging.getLogger(__name__)

SIMPLE_METERS = ("2/4", "3/4", "4/4")
COMPOUND_METERS = ("6/8", "12/8")
METERS = SIMPLE_METERS + COMPOUND_METERS
# Counted beats per minute: quarters in simple meters, dotted quarters in compound ones (12/8 at
# 180 dotted quarters would be 540 eighths a minute, which nobody plays).
SIMPLE_BPM = (60.0, 180.0)
COMPOUND_BPM = (50.0, 100.0)
TEMPO_CHANGES = ("none", "ramp", "step")
MAX_TEMPO_CHANGE = 0.25  # a ritardando, accelerando or step moves the tempo by at most 25 %
MIN_TEMPO_CHANGE = 0.08  # and by at least 8 %, so that it is a change a tracker must follow
MAX_PICKUP_BEATS = 3
MAX_LEADING_SILENCE_S = 1.5


def _balanced(rng: np.random.Generator, values: Sequence, n: int) -> list:
    """``n`` values in shuffled blocks that hold every value once, so the first
    ``len(values)`` already cover them all."""
    out: list = []
    while len(out) < n:
        out.extend(values[i] for i in rng.permutation(len(values)))
    return out[:n]


def tempo_range(time_signature: str) -> tuple[float, float]:
    """The counted-beat tempi sampled for a meter (compound meters count dotted quarters)."""
    return COMPOUND_BPM if time_signature in COMPOUND_METERS else SIMPLE_BPM


def _changed_tempo(rng: np.random.Generator, bpm: float, lo: float, hi: float) -> float:
    """A tempo 8-25 % away from ``bpm``, up or down, kept inside ``[lo, hi]``."""
    factor = rng.uniform(MIN_TEMPO_CHANGE, MAX_TEMPO_CHANGE)
    up, down = bpm * (1 + factor), bpm * (1 - factor)
    if rng.random() < 0.5:
        return round(up if up <= hi else down, 1)
    return round(down if down >= lo else up, 1)


def sample_specs(n: int, seed: int, sr: int = 22050, n_bars: int = 8) -> list[SongSpec]:
    """``n`` varied, reproducible song specs for an evaluation set.

    Meters (2/4, 3/4, 4/4, 6/8, 12/8), tempo changes (none, linear ritardando or accelerando,
    step changes) and leading silence are dealt in shuffled blocks, so any ``n >= 5`` covers
    every meter and ``n >= 3`` every kind of tempo change. Tempi are log-uniform, 60-180 BPM in
    simple meters and 50-100 dotted-quarter BPM in compound ones, and stay in that range through
    tempo changes. Pickups are 0-3 beats (less than a bar), leading silence 0.1-1.5 s on about
    half the songs, swing (simple meters only: it shifts off-beat eighths) on some, and
    drumless intros of 1-2 bars on about half.
    """
    if n < 0 or n_bars < 1:
        raise ValueError(f"need n >= 0 and n_bars >= 1, got n={n}, n_bars={n_bars}")
    rng = np.random.default_rng(seed)
    meters = _balanced(rng, METERS, n)
    changes = _balanced(rng, TEMPO_CHANGES, n)
    silences = _balanced(rng, (False, True), n)
    intros = _balanced(rng, (0, 1, 0, 2), n)
    specs = []
    for i in range(n):
        ts = meters[i]
        bpb = parse_time_signature(ts).beats_per_bar
        lo, hi = tempo_range(ts)
        bpm = round(float(math.exp(rng.uniform(math.log(lo), math.log(hi)))), 1)
        pickup = int(rng.integers(0, min(MAX_PICKUP_BEATS, bpb - 1) + 1))
        lead = round(float(rng.uniform(0.1, MAX_LEADING_SILENCE_S)), 3) if silences[i] else 0.0
        swing = 0.0
        if ts in SIMPLE_METERS and rng.random() < 0.4:
            swing = round(float(rng.uniform(0.15, 0.4)), 2)
        change: dict = {}
        if changes[i] == "ramp":
            change["tempo_end_bpm"] = _changed_tempo(rng, bpm, lo, hi)
        elif changes[i] == "step" and n_bars >= 2:
            # Step changes: one or two bars (2..n_bars, numbered as in notation) where a new
            # tempo starts; each step moves 8-25 % from the tempo before it.
            k = min(int(rng.integers(1, 3)), n_bars - 1)
            bars = sorted(int(b) for b in rng.choice(np.arange(2, n_bars + 1), k, replace=False))
            steps, cur = [], bpm
            for bar in bars:
                cur = _changed_tempo(rng, cur, lo, hi)
                steps.append((bar, cur))
            change["tempo_steps"] = tuple(steps)
        specs.append(
            SongSpec(
                tempo_bpm=bpm,
                time_signature=ts,
                n_bars=n_bars,
                pickup_beats=pickup,
                leading_silence_s=lead,
                sr=sr,
                seed=int(rng.integers(0, 2**31 - 1)),
                drumless_intro_bars=min(intros[i], n_bars - 1),
                swing=swing,
                **change,
            )
        )
    return specs


def song_name(index: int, spec: SongSpec) -> str:
    """File-name-safe song name, e.g. ``s000_4-4_120bpm`` (also the run's song id)."""
    return f"s{index:03d}_{spec.time_signature.replace('/', '-')}_{round(spec.tempo_bpm)}bpm"


def beat_positions(song: RenderedSong) -> np.ndarray:
    """1-based position in the bar of every beat; pickup beats count back from bar 1 (two
    pickup beats in 4/4 are beats 3 and 4)."""
    bpb, pickup = song.beats_per_bar, song.spec.pickup_beats
    return (np.arange(song.beat_times.size) - pickup) % bpb + 1


def write_reference(song: RenderedSong, folder: Path, name: str) -> list[Path]:
    """Write ``<name>.beats.txt`` (time and position per line) and ``<name>.downbeats.txt``.

    Times have 6 decimals (1 us, far below any tolerance); files are written atomically.
    """
    folder = Path(folder)
    beats = folder / f"{name}.beats.txt"
    downbeats = folder / f"{name}.downbeats.txt"
    pos = beat_positions(song)
    write_text(beats, "".join(f"{t:.6f}\t{p}\n" for t, p in zip(song.beat_times, pos, strict=True)))
    write_text(downbeats, "".join(f"{t:.6f}\n" for t in song.downbeat_times))
    return [beats, downbeats]


def write_eval_set(specs: Sequence[SongSpec], folder: Path, fmt: str = "FLAC") -> list[Path]:
    """Render and write every spec (audio, ``<name>_stems/``, MIDI, truth, beat files) into
    ``folder``; return the mix files, in order, named by :func:`song_name`."""
    folder = Path(folder)
    out = []
    for i, spec in enumerate(specs):
        name = song_name(i, spec)
        song = render_song(spec)
        paths = write_song(song, folder, name, subtype="PCM_16", fmt=fmt)
        write_reference(song, folder, name)
        out.append(Path(paths["mix"]))
        log.debug("eval set: wrote %s (%.1f s)", name, song.duration_s)
    write_manifest(out, specs, folder / MANIFEST)
    log.info("eval set: wrote %d songs to %s", len(out), folder)
    return out


MANIFEST = "manifest.csv"


def write_manifest(songs: Sequence[Path], specs: Sequence[SongSpec], path: Path) -> Path:
    """A song manifest (``path``, ``time_signature``) for running the set with each song's true
    meter given (``song=<folder>/manifest.csv``), as opposed to ``time_signature=auto``."""
    lines = ["path,time_signature\n"]
    lines += [f"{p.name},{s.time_signature}\n" for p, s in zip(songs, specs, strict=True)]
    write_text(path, "".join(lines))
    return path
