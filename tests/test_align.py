"""Tests for didactic.stages.align: the synth's exact MIDI placed on its exact beat grid."""

from __future__ import annotations

import numpy as np
import pytest

from didactic.config import TimeSignature, grid_steps_per_beat
from didactic.grid import BeatGrid
from didactic.stages.align import align_notes
from didactic.stages.transcribe import Notes
from didactic.synth import HAT, KICK, SNARE, RenderedSong, SongSpec, render_song

SR = 22050
COLUMNS = {
    "beat_index",
    "bar_index",
    "beat_in_bar",
    "start_beat",
    "end_beat",
    "bar_position",
    "start_beat_q",
    "end_beat_q",
    "start_s_q",
    "end_s_q",
    "bar_index_q",
    "bar_position_q",
}


def truth_grid(song: RenderedSong) -> BeatGrid:
    """The grid the synth rendered, from its beat and downbeat times."""
    downbeats = np.searchsorted(song.beat_times, song.downbeat_times)
    np.testing.assert_array_equal(song.beat_times[downbeats], song.downbeat_times)
    meter = TimeSignature.parse(song.spec.time_signature)
    return BeatGrid(song.beat_times, downbeats, song.duration_s, meter)


def to_notes(song: RenderedSong, stem: str, pitches: set[int] | None = None) -> Notes:
    """The truth notes of one stem (optionally only some drum pitches) as a Notes table."""
    events = [
        (n.start_s, n.end_s, n.pitch, n.velocity)
        for n in song.notes[stem]
        if pitches is None or n.pitch in pitches
    ]
    return Notes.from_events(events)


def make_notes(starts: list[float] | np.ndarray, ends: list[float] | np.ndarray) -> Notes:
    """Notes at the given onsets and offsets (pitch 60)."""
    s = np.asarray(starts, dtype=np.float64)
    return Notes(
        np.full(s.size, 60, np.int32),
        np.full(s.size, 100, np.int32),
        s,
        np.asarray(ends, dtype=np.float64),
    )


@pytest.fixture(scope="module")
def pickup_song() -> RenderedSong:
    """120 BPM 4/4: 0.5 s silence, 2 pickup beats (0.5, 1.0 s), bar 1 at 1.5 s, 4 bars."""
    return render_song(
        SongSpec(n_bars=4, pickup_beats=2, leading_silence_s=0.5, sr=SR, channels=1, trailing_s=0.5)
    )


@pytest.fixture(scope="module")
def pickup_grid(pickup_song: RenderedSong) -> BeatGrid:
    grid = truth_grid(pickup_song)
    assert grid.has_bar0
    np.testing.assert_array_equal(grid.bar_numbers, [0, 1, 2, 3, 4])
    return grid


def expected_bar(beat: np.ndarray, pickup: int, bpb: int) -> np.ndarray:
    """Bar of an integer beat index: 0 for pickup beats, then one bar per ``bpb`` beats."""
    return np.where(beat < pickup, 0, 1 + (beat - pickup) // bpb)


# ---- exact placement of the truth MIDI -------------------------------------------------------


def test_columns_and_shapes(pickup_song: RenderedSong, pickup_grid: BeatGrid) -> None:
    notes = to_notes(pickup_song, "vocals")
    out = align_notes(notes, pickup_grid, 4)
    assert set(out) == COLUMNS
    for name, col in out.items():
        assert col.shape == (len(notes),), name
    for name in ("beat_index", "bar_index", "beat_in_bar", "bar_index_q"):
        assert np.issubdtype(out[name].dtype, np.integer), name


def test_bass_one_note_per_beat(pickup_song: RenderedSong, pickup_grid: BeatGrid) -> None:
    notes = to_notes(pickup_song, "bass")  # one note on every beat, pickup included
    n = pickup_song.spec.n_beats
    assert len(notes) == n == 18
    out = align_notes(notes, pickup_grid, 4)
    beat = np.arange(n)
    np.testing.assert_array_equal(out["beat_index"], beat)
    np.testing.assert_array_equal(out["start_beat"], beat.astype(float))  # exact, on the beat
    np.testing.assert_array_equal(out["bar_index"], expected_bar(beat, 2, 4))
    np.testing.assert_array_equal(out["bar_index"][:6], [0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(out["beat_in_bar"], (beat - 2) % 4 + 1)
    np.testing.assert_array_equal(out["beat_in_bar"][:3], [3, 4, 1])
    # Integer positions in the bar; the pickup sits on beats 3 and 4 of bar 0 (positions 2, 3).
    np.testing.assert_array_equal(out["bar_position"], (beat - 2) % 4)
    # Each lasts 0.9 beat: 3.6 sixteenths round to 4, so a quantized quarter note.
    np.testing.assert_allclose(out["end_beat"], beat + 0.9, atol=1e-9)
    np.testing.assert_array_equal(out["start_beat_q"], beat)
    np.testing.assert_array_equal(out["end_beat_q"], beat + 1.0)
    np.testing.assert_array_equal(out["start_s_q"], notes.start_s)
    np.testing.assert_allclose(out["end_s_q"], 0.5 + 0.5 * (beat + 1.0), atol=1e-12)
    np.testing.assert_array_equal(out["bar_index_q"], out["bar_index"])
    np.testing.assert_array_equal(out["bar_position_q"], out["bar_position"])


@pytest.mark.parametrize("stem", ["vocals", "other", "bass"])
def test_on_beat_stems_land_on_their_beats(
    pickup_song: RenderedSong, pickup_grid: BeatGrid, stem: str
) -> None:
    notes = to_notes(pickup_song, stem)
    out = align_notes(notes, pickup_grid, 4)
    bi = out["beat_index"]
    assert np.all(bi >= 0)
    # The beat found is the one the note starts on, to the bit.
    np.testing.assert_array_equal(pickup_song.beat_times[bi], notes.start_s)
    np.testing.assert_array_equal(out["start_beat"], bi)
    np.testing.assert_array_equal(out["bar_index"], expected_bar(bi, 2, 4))
    np.testing.assert_array_equal(out["beat_in_bar"], (bi - 2) % 4 + 1)
    np.testing.assert_array_equal(out["bar_position"], (bi - 2) % 4)
    assert np.all(out["bar_position"] == np.round(out["bar_position"]))


def test_chords_start_on_downbeats(pickup_song: RenderedSong, pickup_grid: BeatGrid) -> None:
    out = align_notes(to_notes(pickup_song, "other"), pickup_grid, 4)
    np.testing.assert_array_equal(out["beat_in_bar"], 1)
    np.testing.assert_array_equal(out["bar_position"], 0.0)
    np.testing.assert_array_equal(out["bar_index"], np.repeat([1, 2, 3, 4], 3))
    # Chords last bpb - 0.1 beats: 3.9 beats -> 15.6 sixteenths -> 16: a whole bar.
    np.testing.assert_array_equal(out["end_beat_q"] - out["start_beat_q"], 4.0)


def test_hats_on_eighths_quantize_to_sixteenths(
    pickup_song: RenderedSong, pickup_grid: BeatGrid
) -> None:
    notes = to_notes(pickup_song, "drums", {HAT})  # two per beat from bar 1 on, 0.1 beat long
    out = align_notes(notes, pickup_grid, grid_steps_per_beat("1/16", pickup_grid.meter))
    k = np.arange(len(notes))
    assert len(notes) == 2 * 16
    np.testing.assert_allclose(out["start_beat"], 2 + k / 2, atol=1e-9)
    np.testing.assert_array_equal(out["beat_index"], 2 + k // 2)
    np.testing.assert_allclose(out["bar_position"], (k / 2) % 4, atol=1e-9)
    np.testing.assert_array_equal(out["beat_in_bar"], (k // 2) % 4 + 1)
    q = out["start_beat_q"]
    np.testing.assert_array_equal(q * 4, np.round(q * 4))  # multiples of 1/16 = 0.25 beat
    np.testing.assert_array_equal(q, 2 + k / 2)
    # 0.1 beat rounds to zero steps; a quantized note lasts at least one step.
    np.testing.assert_array_equal(out["end_beat_q"], q + 0.25)
    np.testing.assert_allclose(out["start_s_q"], notes.start_s, atol=1e-12)
    np.testing.assert_allclose(out["end_s_q"] - out["start_s_q"], 0.125, atol=1e-12)


def test_kicks_and_snares_on_their_beats(pickup_song: RenderedSong, pickup_grid: BeatGrid) -> None:
    for pitch, beats_in_bar in ((KICK, {1, 3}), (SNARE, {2, 4})):
        out = align_notes(to_notes(pickup_song, "drums", {pitch}), pickup_grid, 4)
        assert set(out["beat_in_bar"].tolist()) == beats_in_bar
        assert len(out["beat_in_bar"]) == 2 * 4
        np.testing.assert_array_equal(np.bincount(out["bar_index"]), [0, 2, 2, 2, 2])


def test_six_eight_with_pickup_and_tempo_ramp() -> None:
    spec = SongSpec(
        time_signature="6/8",
        tempo_bpm=90.0,
        tempo_end_bpm=110.0,
        n_bars=4,
        pickup_beats=1,
        leading_silence_s=0.25,
        sr=SR,
        channels=1,
        trailing_s=0.5,
    )
    song = render_song(spec)
    grid = truth_grid(song)
    steps = grid_steps_per_beat("1/16", grid.meter)
    assert grid.meter.beats_per_bar == 2 and steps == 6
    assert np.ptp(np.diff(grid.beat_times)) > 0.05  # the tempo really changes

    bass = to_notes(song, "bass")
    out = align_notes(bass, grid, steps)
    beat = np.arange(spec.n_beats)
    np.testing.assert_array_equal(out["beat_index"], beat)
    np.testing.assert_array_equal(out["start_beat"], beat)
    np.testing.assert_array_equal(out["bar_index"], expected_bar(beat, 1, 2))
    np.testing.assert_array_equal(out["beat_in_bar"], [2, 1, 2, 1, 2, 1, 2, 1, 2])
    np.testing.assert_array_equal(out["bar_position"], (beat - 1) % 2)
    np.testing.assert_allclose(out["end_beat_q"], beat + 5 / 6, atol=1e-12)  # 0.9 -> 5/6

    # Three hats per dotted-quarter beat, from bar 1. Hats after the last beat (8) are placed
    # by extrapolating its interval, which under the ramp differs from the synth's next beat;
    # check those against the extrapolation and the rest exactly, on the grid.
    all_hats = to_notes(song, "drums", {HAT})
    assert len(all_hats) == 3 * 8
    bt = grid.beat_times
    tail = all_hats.start_s > bt[-1]
    assert tail.sum() == 2
    out = align_notes(all_hats, grid, steps)
    ext = 8 + (all_hats.start_s[tail] - bt[-1]) / (bt[-1] - bt[-2])
    np.testing.assert_allclose(out["start_beat"][tail], ext, atol=1e-12)
    np.testing.assert_array_equal(out["beat_index"][tail], 8)
    np.testing.assert_array_equal(out["bar_index"][tail], 4)

    hats = Notes(*(getattr(all_hats, f)[~tail] for f in ("pitch", "velocity", "start_s", "end_s")))
    out = align_notes(hats, grid, steps)
    k = np.arange(len(hats))
    np.testing.assert_allclose(out["start_beat"], 1 + k / 3, atol=1e-9)
    q = out["start_beat_q"]
    np.testing.assert_allclose(q * 6, np.round(q * 6), atol=1e-12)
    np.testing.assert_allclose(q, 1 + k / 3, atol=1e-12)
    np.testing.assert_allclose(out["end_beat_q"] - q, 1 / 6, atol=1e-12)
    np.testing.assert_array_equal(out["bar_index"], 1 + k // 6)
    np.testing.assert_array_equal(out["bar_index_q"], 1 + k // 6)
    np.testing.assert_allclose(out["bar_position_q"], (k % 6) / 3, atol=1e-12)
    np.testing.assert_allclose(out["start_s_q"], hats.start_s, atol=1e-9)


# ---- edge cases on the pickup grid (beats at 0.5 + 0.5 k s, bars at 0, 1.5, 3.5, 5.5, 7.5 s) --


def test_note_just_before_a_downbeat_quantizes_into_the_next_bar(pickup_grid: BeatGrid) -> None:
    out = align_notes(make_notes([3.49, 1.49], [3.8, 1.7]), pickup_grid, 4)
    # 10 ms (0.02 beat) before bar 2's downbeat at 3.5 s, and before bar 1's at 1.5 s.
    np.testing.assert_array_equal(out["bar_index"], [1, 0])
    np.testing.assert_array_equal(out["beat_index"], [5, 1])
    np.testing.assert_array_equal(out["beat_in_bar"], [4, 4])
    np.testing.assert_allclose(out["bar_position"], [3.98, 3.98], atol=1e-9)
    np.testing.assert_array_equal(out["start_beat_q"], [6.0, 2.0])
    np.testing.assert_array_equal(out["start_s_q"], [3.5, 1.5])
    np.testing.assert_array_equal(out["bar_index_q"], [2, 1])
    np.testing.assert_array_equal(out["bar_position_q"], [0.0, 0.0])


def test_note_before_the_first_beat(pickup_grid: BeatGrid) -> None:
    out = align_notes(make_notes([0.2, 0.0], [0.4, 0.05]), pickup_grid, 4)
    np.testing.assert_array_equal(out["beat_index"], [-1, -1])
    np.testing.assert_array_equal(out["bar_index"], [0, 0])
    np.testing.assert_array_equal(out["beat_in_bar"], [-1, -1])
    np.testing.assert_allclose(out["start_beat"], [-0.6, -1.0], atol=1e-12)
    # Bar 0's origin is a full bar before bar 1 (beat -2, at -0.5 s).
    np.testing.assert_allclose(out["bar_position"], [1.4, 1.0], atol=1e-12)
    np.testing.assert_allclose(out["start_beat_q"], [-0.5, -1.0])
    np.testing.assert_allclose(out["start_s_q"], [0.25, 0.0], atol=1e-12)
    np.testing.assert_array_equal(out["bar_index_q"], [0, 0])
    # 0.05 s is 0.1 beat long: it rounds to zero steps, so it is stretched to one step.
    np.testing.assert_allclose(out["end_beat_q"], [-0.25, -0.75])


def test_note_after_the_last_beat(pickup_grid: BeatGrid) -> None:
    # The last beat (17) is at 9.0 s; the song ends at 10.0 s.
    out = align_notes(make_notes([9.7], [9.95]), pickup_grid, 4)
    assert out["beat_index"][0] == 17
    assert out["bar_index"][0] == 4 and out["beat_in_bar"][0] == 4
    assert out["start_beat"][0] == pytest.approx(18.4)
    assert out["bar_position"][0] == pytest.approx(4.4)
    assert out["start_beat_q"][0] == 18.5
    assert out["start_s_q"][0] == pytest.approx(9.75)
    assert out["bar_index_q"][0] == 4


def test_short_note_lasts_one_step(pickup_grid: BeatGrid) -> None:
    out = align_notes(make_notes([2.0, 2.5], [2.01, 2.5]), pickup_grid, 4)
    np.testing.assert_array_equal(out["end_beat_q"] - out["start_beat_q"], [0.25, 0.25])
    np.testing.assert_allclose(out["end_s_q"], [2.125, 2.625], atol=1e-12)
    out = align_notes(make_notes([2.0], [2.01]), pickup_grid, 12)  # 1/48: triplet sixteenths
    assert out["end_beat_q"][0] - out["start_beat_q"][0] == pytest.approx(1 / 12)


def test_no_notes(pickup_grid: BeatGrid) -> None:
    out = align_notes(Notes(), pickup_grid, 4)
    assert set(out) == COLUMNS
    assert all(col.shape == (0,) for col in out.values())


def test_grid_without_bar0() -> None:
    beats = 0.5 * np.arange(8)
    grid = BeatGrid(beats, np.array([0, 4]), 4.0, TimeSignature(4, 4))
    out = align_notes(make_notes([0.0, 1.75, 2.0, 3.9], [0.4, 1.9, 2.4, 3.99]), grid, 4)
    np.testing.assert_array_equal(out["bar_index"], [1, 1, 2, 2])
    np.testing.assert_array_equal(out["beat_in_bar"], [1, 4, 1, 4])
    np.testing.assert_allclose(out["bar_position"], [0.0, 3.5, 0.0, 3.8], atol=1e-12)
    np.testing.assert_array_equal(out["bar_index_q"], [1, 1, 2, 2])
    np.testing.assert_allclose(out["bar_position_q"], [0.0, 3.5, 0.0, 3.75])


# ---- many notes --------------------------------------------------------------------------------


def test_vectorized_over_many_notes(pickup_grid: BeatGrid) -> None:
    """100k random notes against the closed form of the steady pickup grid."""
    rng = np.random.default_rng(7)
    n = 100_000
    start = np.sort(rng.uniform(0.0, pickup_grid.duration_s - 0.01, n))
    end = start + rng.uniform(0.001, 1.0, n)
    notes = make_notes(start, end)
    out = align_notes(notes, pickup_grid, 4)

    pos = (start - 0.5) / 0.5  # first beat 0.5 s, beats every 0.5 s
    np.testing.assert_allclose(out["start_beat"], pos, atol=1e-9)
    np.testing.assert_allclose(out["end_beat"], (end - 0.5) / 0.5, atol=1e-9)
    beat = np.where(pos < 0, -1, np.minimum(np.floor(pos), 17)).astype(np.int64)
    np.testing.assert_array_equal(out["beat_index"], beat)
    bar = np.where(start < 1.5, 0, np.minimum(1 + np.floor((start - 1.5) / 2.0), 4))
    np.testing.assert_array_equal(out["bar_index"], bar)
    np.testing.assert_array_equal(out["beat_in_bar"], np.where(beat < 0, -1, (beat - 2) % 4 + 1))
    origin = np.where(bar == 0, -2.0, 2.0 + 4.0 * (bar - 1))
    np.testing.assert_allclose(out["bar_position"], pos - origin, atol=1e-9)
    assert np.all(out["bar_position"] >= -1e-9) and np.all(out["bar_position"] < 5.0)

    q = np.round(pos * 4) / 4
    np.testing.assert_array_equal(out["start_beat_q"], q)
    assert np.all(out["end_beat_q"] - out["start_beat_q"] >= 0.25 - 1e-12)
    np.testing.assert_allclose(out["start_s_q"], 0.5 + 0.5 * q, atol=1e-9)
    bar_q = np.where(q < 2, 0, np.minimum(1 + np.floor((q - 2) / 4), 4))
    np.testing.assert_array_equal(out["bar_index_q"], bar_q)
    origin_q = np.where(bar_q == 0, -2.0, 2.0 + 4.0 * (bar_q - 1))
    np.testing.assert_allclose(out["bar_position_q"], q - origin_q, atol=1e-9)
    # Snapping moves an onset by at most half a step and never back more than one bar.
    assert np.all(np.abs(out["start_beat_q"] - pos) <= 0.125 + 1e-9)
    assert np.all((out["bar_index_q"] - out["bar_index"] >= 0) & (out["bar_index_q"] - bar <= 1))

    # One note at a time gives the same answer as the batch.
    for i in rng.choice(n, 25, replace=False):
        one = align_notes(make_notes(start[i : i + 1], end[i : i + 1]), pickup_grid, 4)
        for name, col in out.items():
            np.testing.assert_array_equal(one[name], col[i : i + 1], err_msg=name)
