"""MIDI files that open on the detected grid: a tempo map with one tempo per beat and
time-signature events, so a DAW or notation program draws its bar lines on the song's bars.

Ticks are laid out in musical time: every beat lasts exactly one beat of ticks, and the tempo
events make those ticks land on the detected beat times. What comes before the first beat
(leading silence) is rounded to whole beats at the first tempo. Bar 0 (pickup and silence)
gets its own time signature of that many beats, so bar 1 starts on a bar line.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import mido
import numpy as np

from didactic.atomic import write_bytes
from didactic.grid import BeatGrid
from didactic.stages.transcribe import Notes

TICKS_PER_QUARTER = 480
DRUM_CHANNEL = 9


class TickMap:
    """Seconds to ticks and back on a grid's tempo map."""

    def __init__(self, grid: BeatGrid) -> None:
        bt = grid.beat_times
        self.beat_ticks = round(TICKS_PER_QUARTER * 4 * float(grid.meter.beat_fraction))
        ibi0 = float(bt[1] - bt[0]) if bt.size > 1 else 0.5
        lead = float(bt[0]) if bt.size else 0.0
        # Leading silence as whole beats (at least one when there is any), at its own tempo.
        self.lead_beats = max(1, round(lead / ibi0)) if lead > 1e-3 else 0
        # Knots (seconds, beats from tick 0): grid beat k sits at musical beat lead_beats + k.
        k = np.arange(bt.size, dtype=float)
        if self.lead_beats:
            self.secs = np.concatenate([[0.0], bt])
            self.beats = np.concatenate([[0.0], k + self.lead_beats])
        else:
            self.secs, self.beats = bt.copy(), k
        self.grid = grid

    def ticks(self, t: np.ndarray) -> np.ndarray:
        """Tick of each time (linear between knots, the last interval continued after)."""
        t = np.asarray(t, dtype=float)
        pos = np.interp(t, self.secs, self.beats)
        if self.secs.size > 1:
            last_ibi = self.secs[-1] - self.secs[-2]
            pos = np.where(t > self.secs[-1], self.beats[-1] + (t - self.secs[-1]) / last_ibi, pos)
        return np.rint(pos * self.beat_ticks).astype(np.int64)

    def tempo_events(self) -> list[tuple[int, int]]:
        """(tick, microseconds per quarter) at every knot."""
        out = []
        for i in range(self.secs.size - 1):
            dur = self.secs[i + 1] - self.secs[i]
            span_beats = self.beats[i + 1] - self.beats[i]
            per_quarter = dur / span_beats * TICKS_PER_QUARTER / self.beat_ticks
            out.append((round(self.beats[i] * self.beat_ticks), round(per_quarter * 1e6)))
        return out

    def meter_events(self) -> list[tuple[int, int, int]]:
        """(tick, numerator, denominator): bar 0 as its own measure, then the song's meter."""
        m = self.grid.meter
        db = self.grid.downbeats
        if not db.size:
            return [(0, m.numerator, m.denominator)]
        first = round((self.lead_beats + int(db[0])) * self.beat_ticks)
        if first == 0:
            return [(0, m.numerator, m.denominator)]
        # Bar 0 lasts `first` ticks: written in the meter's note value (eighths for 6/8).
        unit = TICKS_PER_QUARTER * 4 // m.denominator
        return [
            (0, max(1, round(first / unit)), m.denominator),
            (first, m.numerator, m.denominator),
        ]


def write_midi(
    path: Path, tracks: Mapping[str, Notes], grid: BeatGrid, drums: tuple[str, ...] = ("drums",)
) -> None:
    """One track per stem (drum stems on the percussion channel), tempo map and meter."""
    tm = TickMap(grid)
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_QUARTER)
    meta = [
        (tick, mido.MetaMessage("set_tempo", tempo=us, time=0)) for tick, us in tm.tempo_events()
    ]
    if not meta:
        meta = [(0, mido.MetaMessage("set_tempo", tempo=500000, time=0))]
    for tick, num, den in tm.meter_events():
        meta.append(
            (tick, mido.MetaMessage("time_signature", numerator=num, denominator=den, time=0))
        )
    mid.tracks.append(_track(meta, name="tempo map"))
    channel = 0
    for stem, notes in tracks.items():
        ch = DRUM_CHANNEL if stem in drums else channel
        if stem not in drums:
            channel = channel + 1 if channel + 1 != DRUM_CHANNEL else channel + 2
        on, off = tm.ticks(notes.start_s), tm.ticks(notes.end_s)
        off = np.maximum(off, on + 1)
        events = []
        for p, v, a, b in zip(notes.pitch, notes.velocity, on, off, strict=True):
            events.append(
                (int(a), 1, mido.Message("note_on", note=int(p), velocity=int(v), channel=ch))
            )
            events.append(
                (int(b), 0, mido.Message("note_off", note=int(p), velocity=0, channel=ch))
            )
        events.sort(key=lambda e: (e[0], e[1]))
        mid.tracks.append(_track([(t, m) for t, _, m in events], name=stem))
    buf = io.BytesIO()
    mid.save(file=buf)
    write_bytes(path, buf.getvalue())


def _track(events: list[tuple[int, object]], name: str) -> mido.MidiTrack:
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=name, time=0))
    now = 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        track.append(msg.copy(time=tick - now))
        now = tick
    return track
