"""MIDI that opens on the grid: tempo map, meter events, bar lines on the song's bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from didactic.config import TimeSignature
from didactic.grid import BeatGrid
from didactic.midi import write_midi
from didactic.stages.transcribe import Notes
from didactic.synth import SongSpec, render_song


def _truth_grid(song) -> BeatGrid:
    spec = song.spec
    bt = song.beat_times
    db = np.arange(spec.pickup_beats, bt.size, song.beats_per_bar)
    return BeatGrid(bt, db, song.duration_s, TimeSignature.parse(spec.time_signature))


def _notes(song, stem: str) -> Notes:
    return Notes.from_events([(n.start_s, n.end_s, n.pitch, n.velocity) for n in song.notes[stem]])


@pytest.mark.parametrize(
    "spec",
    [
        SongSpec(tempo_bpm=120, n_bars=4, seed=1),
        SongSpec(tempo_bpm=96, n_bars=4, pickup_beats=2, leading_silence_s=0.8, seed=2),
        SongSpec(tempo_bpm=100, tempo_end_bpm=130, n_bars=6, pickup_beats=1, seed=3),
        SongSpec(tempo_bpm=80, time_signature="6/8", n_bars=4, pickup_beats=1, seed=4),
        SongSpec(tempo_bpm=110, time_signature="3/4", n_bars=4, leading_silence_s=0.3, seed=5),
    ],
    ids=["4/4", "pickup-silence", "accelerando", "6/8-pickup", "3/4-silence"],
)
def test_bar_lines_and_notes_land_on_the_grid(tmp_path: Path, spec: SongSpec) -> None:
    song = render_song(spec)
    grid = _truth_grid(song)
    path = tmp_path / "all.mid"
    write_midi(path, {"bass": _notes(song, "bass"), "drums": _notes(song, "drums")}, grid)
    pm = pretty_midi.PrettyMIDI(str(path))
    # Bar lines: pretty_midi's downbeats include bar 1 onwards at the true downbeats.
    down = pm.get_downbeats()
    for t in song.downbeat_times:
        assert np.min(np.abs(down - t)) < 0.002, f"no bar line at {t:.3f} s"
    # Beats: every detected beat is a beat of the file.
    beats = pm.get_beats()
    for t in grid.beat_times:
        assert np.min(np.abs(beats - t)) < 0.002
    # Meter: the song's time signature from bar 1.
    ts = [(x.numerator, x.denominator, x.time) for x in pm.time_signature_changes]
    assert (grid.meter.numerator, grid.meter.denominator) == ts[-1][:2]
    assert ts[-1][2] == pytest.approx(grid.bar_starts[grid.bar_numbers == 1][0], abs=0.002)
    # Notes keep their times (tick rounding only) and tracks keep their stems.
    by_name = {i.name: i for i in pm.instruments}
    assert set(by_name) == {"bass", "drums"} and by_name["drums"].is_drum
    starts = np.sort([n.start for n in by_name["bass"].notes])
    np.testing.assert_allclose(starts, np.sort([n.start_s for n in song.notes["bass"]]), atol=0.002)
