"""Tests for didactic.grid.BeatGrid against hand-built grids whose bars and tempi are known."""

from __future__ import annotations

import numpy as np
import pytest

from didactic.config import TimeSignature, grid_steps_per_beat
from didactic.grid import MIN_BAR0_S, BeatGrid

FOUR = TimeSignature(4, 4)
THREE = TimeSignature(3, 4)
SIX_EIGHT = TimeSignature(6, 8)


def steady(
    n_beats: int,
    bpm: float = 120.0,
    first_beat_s: float = 0.0,
    first_downbeat: int = 0,
    meter: TimeSignature = FOUR,
    tail_s: float = 0.5,
) -> BeatGrid:
    """A constant-tempo grid: downbeats every bar from beat ``first_downbeat`` on."""
    period = 60.0 / bpm
    beats = first_beat_s + period * np.arange(n_beats)
    downbeats = np.arange(first_downbeat, n_beats, meter.beats_per_bar)
    return BeatGrid(beats, downbeats, float(beats[-1] + tail_s), meter)


def assert_tiles(grid: BeatGrid) -> None:
    """Bars start at 0, end at the duration and leave no gaps or overlaps."""
    assert grid.bar_starts[0] == 0.0
    assert grid.bar_ends[-1] == grid.duration_s
    np.testing.assert_array_equal(grid.bar_ends[:-1], grid.bar_starts[1:])
    assert np.all(grid.bar_ends > grid.bar_starts)
    assert grid.bar_starts.size == grid.bar_ends.size == grid.bar_numbers.size == grid.n_bars


# ---- bars ------------------------------------------------------------------------------------


def test_bars_without_pickup_start_at_one() -> None:
    grid = steady(16)  # first downbeat at 0 s: no bar 0
    assert not grid.has_bar0
    assert_tiles(grid)
    np.testing.assert_array_equal(grid.bar_numbers, [1, 2, 3, 4])
    np.testing.assert_allclose(grid.bar_starts, [0.0, 2.0, 4.0, 6.0])
    assert grid.bar_ends[-1] == pytest.approx(8.0)


def test_pickup_opens_bar0() -> None:
    # 0.5 s of silence, 2 pickup beats, then 3 bars of 4/4 at 120 BPM.
    grid = steady(14, first_beat_s=0.5, first_downbeat=2)
    assert grid.has_bar0
    assert_tiles(grid)
    np.testing.assert_array_equal(grid.bar_numbers, [0, 1, 2, 3])
    np.testing.assert_allclose(grid.bar_starts, [0.0, 1.5, 3.5, 5.5])
    np.testing.assert_array_equal(grid.bar_n_beats, [2, 4, 4, 4])


def test_leading_silence_without_beats_is_an_empty_bar0() -> None:
    grid = steady(8, first_beat_s=1.0)
    assert grid.has_bar0
    assert_tiles(grid)
    np.testing.assert_array_equal(grid.bar_numbers, [0, 1, 2])
    np.testing.assert_array_equal(grid.bar_n_beats, [0, 4, 4])


@pytest.mark.parametrize(
    ("first_downbeat_s", "bar0"),
    [(0.0, False), (0.03, False), (MIN_BAR0_S, False), (MIN_BAR0_S + 1e-3, True), (0.3, True)],
)
def test_bar0_iff_first_downbeat_after_threshold(first_downbeat_s: float, bar0: bool) -> None:
    grid = steady(8, first_beat_s=first_downbeat_s)
    assert grid.has_bar0 is bar0
    assert_tiles(grid)
    expected = [0, 1, 2] if bar0 else [1, 2]
    np.testing.assert_array_equal(grid.bar_numbers, expected)
    # The first downbeat is always where bar 1 starts, or 0 s when the sliver is absorbed.
    bar1 = grid.bar_starts[grid.bar_numbers == 1][0]
    assert bar1 == (first_downbeat_s if bar0 else 0.0)
    # Every beat belongs to bar 1 or later: a sliver before the first beat holds no beat.
    assert np.all(grid.beat_bar_index >= 1)


def test_no_negative_index_anywhere() -> None:
    grid = steady(14, first_beat_s=0.5, first_downbeat=2)
    assert np.all(grid.bar_numbers >= 0)
    assert np.all(grid.beat_bar_index >= 0)
    assert np.all(grid.beat_in_bar >= 1)
    assert np.all(grid.bar_n_beats >= 0)
    probe = np.linspace(-1.0, grid.duration_s + 1.0, 500)
    assert np.all(grid.bar_of_time(probe) >= 0)


def test_no_downbeats_is_one_bar0() -> None:
    grid = BeatGrid(np.array([0.5, 1.0, 1.5]), np.array([], dtype=np.int64), 2.0, FOUR)
    assert_tiles(grid)
    np.testing.assert_array_equal(grid.bar_numbers, [0])
    np.testing.assert_array_equal(grid.beat_in_bar, [1, 2, 3])
    np.testing.assert_array_equal(grid.bar_n_beats, [3])


def test_empty_grid_is_one_bar() -> None:
    grid = BeatGrid(np.array([]), np.array([], dtype=np.int64), 3.0, FOUR)
    assert_tiles(grid)
    assert grid.n_bars == 1 and grid.n_beats == 0
    assert np.isnan(grid.tempo_bpm)
    assert np.isnan(grid.bar_tempo_bpm).all()
    assert np.isnan(grid.beat_position(1.0))


# ---- beats in bars -----------------------------------------------------------------------------


def test_pickup_beats_count_back() -> None:
    grid = steady(10, first_beat_s=0.5, first_downbeat=2)
    np.testing.assert_array_equal(grid.beat_in_bar, [3, 4, 1, 2, 3, 4, 1, 2, 3, 4])
    np.testing.assert_array_equal(grid.beat_bar_index, [0, 0, 1, 1, 1, 1, 2, 2, 2, 2])


def test_one_pickup_beat_in_three_four() -> None:
    grid = steady(7, first_beat_s=0.4, first_downbeat=1, meter=THREE)
    np.testing.assert_array_equal(grid.beat_in_bar, [3, 1, 2, 3, 1, 2, 3])
    np.testing.assert_array_equal(grid.beat_bar_index, [0, 1, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(grid.bar_n_beats, [1, 3, 3])


def test_bar_of_time_on_boundaries() -> None:
    grid = steady(14, first_beat_s=0.5, first_downbeat=2)  # bars start 0, 1.5, 3.5, 5.5
    eps = 1e-9
    t = np.array([0.0, 1.5 - eps, 1.5, 1.5 + eps, 3.5 - eps, 3.5, 5.5, grid.duration_s - eps])
    np.testing.assert_array_equal(grid.bar_of_time(t), [0, 0, 1, 1, 1, 2, 3, 3])
    # Exactly on every downbeat: the new bar.
    db_times = grid.beat_times[grid.downbeats]
    np.testing.assert_array_equal(grid.bar_of_time(db_times), [1, 2, 3])
    # Scalars work, and times past the end fall in the last bar.
    assert int(grid.bar_of_time(1.5)) == 1
    assert int(grid.bar_of_time(grid.duration_s + 10.0)) == 3
    assert int(grid.bar_of_time(-1.0)) == 0


def test_bar_of_time_sliver_belongs_to_bar1() -> None:
    grid = steady(8, first_beat_s=0.02)
    np.testing.assert_array_equal(grid.bar_of_time([0.0, 0.01, 0.02, 2.01, 2.02]), [1, 1, 1, 1, 2])


def test_bar_n_beats_irregular() -> None:
    # Bars of 4, 3 (a dropped beat) and 5 beats.
    beats = 0.5 * np.arange(12)
    grid = BeatGrid(beats, np.array([0, 4, 7]), 6.0, FOUR)
    np.testing.assert_array_equal(grid.bar_n_beats, [4, 3, 5])
    np.testing.assert_array_equal(grid.beat_in_bar, [1, 2, 3, 4, 1, 2, 3, 1, 2, 3, 4, 5])
    assert grid.bar_n_beats.sum() == grid.n_beats


# ---- tempo -------------------------------------------------------------------------------------


def test_bar_tempo_on_steady_grid() -> None:
    grid = steady(16, first_beat_s=1.0)  # empty bar 0, then 4 bars at 120 BPM
    tempo = grid.bar_tempo_bpm
    assert tempo.shape == (grid.n_bars,)
    assert np.isnan(tempo[0])
    np.testing.assert_allclose(tempo[1:], 120.0, rtol=1e-12)
    assert grid.tempo_bpm == pytest.approx(120.0, rel=1e-12)
    np.testing.assert_allclose(grid.local_tempo_bpm, 120.0, rtol=1e-12)


def test_bar_tempo_follows_a_tempo_change() -> None:
    # Bar 1 at 120 BPM (0.5 s beats), bar 2 at 60 BPM (1 s beats).
    beats = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0])
    grid = BeatGrid(beats, np.array([0, 4]), 6.0, FOUR)
    # Bar 1 holds the intervals starting at beats 0..3: 0.5, 0.5, 0.5, 0.5.
    # Bar 2 holds those starting at beats 4..6 (beat 7 is the last and starts none): 1, 1, 1.
    np.testing.assert_allclose(grid.bar_tempo_bpm, [120.0, 60.0])


def test_local_tempo() -> None:
    beats = np.array([0.0, 0.5, 1.5, 2.0])  # intervals 0.5, 1.0, 0.5
    grid = BeatGrid(beats, np.array([0]), 3.0, FOUR)
    # 60 / mean of the intervals either side; the ends use their one interval.
    np.testing.assert_allclose(grid.local_tempo_bpm, [120.0, 80.0, 80.0, 120.0])
    assert grid.tempo_bpm == pytest.approx(120.0)  # median interval 0.5 s


def test_tempo_of_single_beat_is_nan() -> None:
    grid = BeatGrid(np.array([0.5]), np.array([0]), 2.0, FOUR)
    assert np.isnan(grid.tempo_bpm)
    assert np.isnan(grid.local_tempo_bpm).all() and grid.local_tempo_bpm.shape == (1,)
    assert np.isnan(grid.bar_tempo_bpm).all()


# ---- beat coordinates --------------------------------------------------------------------------


def test_beat_position_values() -> None:
    beats = np.array([1.0, 1.5, 2.5, 3.0])  # intervals 0.5, 1.0, 0.5
    grid = BeatGrid(beats, np.array([0]), 5.0, FOUR)
    t = np.array([0.0, 0.5, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 3.25, 4.0])
    expected = [-2.0, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 3.5, 5.0]
    np.testing.assert_allclose(grid.beat_position(t), expected, atol=1e-12)
    # Exactly on a beat: exactly its index.
    np.testing.assert_array_equal(grid.beat_position(beats), [0.0, 1.0, 2.0, 3.0])
    assert float(grid.beat_position(1.25)) == pytest.approx(0.5)


def test_beat_position_and_time_of_position_are_inverse() -> None:
    rng = np.random.default_rng(1)
    beats = 0.7 + np.cumsum(rng.uniform(0.3, 0.8, 40))
    grid = BeatGrid(beats, np.arange(0, 40, 4), float(beats[-1] + 3.0), FOUR)
    t = np.concatenate([[0.0, 0.1], np.sort(rng.uniform(0, grid.duration_s, 2000)), beats])
    t = np.concatenate([t, [beats[-1] + 2.9]])  # extrapolation after the last beat
    pos = grid.beat_position(t)
    np.testing.assert_allclose(grid.time_of_position(pos), t, atol=1e-9)
    p = np.concatenate([[-3.0, -0.25], np.linspace(0, 39, 777), [39.0, 40.5, 45.0]])
    np.testing.assert_allclose(grid.beat_position(grid.time_of_position(p)), p, atol=1e-9)
    assert np.all(np.diff(grid.beat_position(np.sort(t))) >= 0)  # monotone


def test_time_of_position_extrapolates_at_the_edge_intervals() -> None:
    beats = np.array([1.0, 1.5, 2.5, 3.0])
    grid = BeatGrid(beats, np.array([0]), 5.0, FOUR)
    np.testing.assert_allclose(
        grid.time_of_position([-2.0, -0.5, 0.0, 1.5, 3.0, 4.0]), [0.0, 0.75, 1.0, 2.0, 3.0, 3.5]
    )


# ---- meters ------------------------------------------------------------------------------------


def test_three_four() -> None:
    grid = steady(9, meter=THREE)
    assert_tiles(grid)
    np.testing.assert_array_equal(grid.bar_numbers, [1, 2, 3])
    np.testing.assert_array_equal(grid.bar_n_beats, [3, 3, 3])
    np.testing.assert_array_equal(grid.beat_in_bar, [1, 2, 3] * 3)
    np.testing.assert_allclose(grid.bar_starts, [0.0, 1.5, 3.0])


def test_six_eight_has_two_beats_per_bar() -> None:
    assert SIX_EIGHT.beats_per_bar == 2 and SIX_EIGHT.is_compound
    assert grid_steps_per_beat("1/16", SIX_EIGHT) == 6
    assert grid_steps_per_beat("1/16", FOUR) == 4
    assert grid_steps_per_beat("1/8", THREE) == 2
    # Dotted-quarter beats at 80 BPM (0.75 s), one pickup beat after 0.25 s.
    grid = steady(7, bpm=80.0, first_beat_s=0.25, first_downbeat=1, meter=SIX_EIGHT)
    assert_tiles(grid)
    np.testing.assert_array_equal(grid.bar_numbers, [0, 1, 2, 3])
    np.testing.assert_array_equal(grid.bar_n_beats, [1, 2, 2, 2])
    np.testing.assert_array_equal(grid.beat_in_bar, [2, 1, 2, 1, 2, 1, 2])
    np.testing.assert_allclose(grid.bar_starts, [0.0, 1.0, 2.5, 4.0])
    np.testing.assert_allclose(grid.bar_tempo_bpm[1:], 80.0)


# ---- invalid input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("beats", "downbeats", "duration"),
    [
        ([0.0, 0.5, 0.5, 1.0], [0], 2.0),  # repeated beat
        ([0.0, 1.0, 0.5], [0], 2.0),  # decreasing
        ([-0.1, 0.5], [0], 2.0),  # before 0
        ([0.0, 0.5, 2.0], [0], 2.0),  # at the end
        ([0.0, 0.5, 3.0], [0], 2.0),  # after the end
        ([0.0, np.nan, 1.0], [0], 2.0),  # not a number
        ([0.0, 0.5, 1.0], [2, 1], 2.0),  # decreasing downbeats
        ([0.0, 0.5, 1.0], [0, 0], 2.0),  # repeated downbeat
        ([0.0, 0.5, 1.0], [0, 3], 2.0),  # downbeat index out of range
        ([0.0, 0.5, 1.0], [-1, 1], 2.0),  # negative downbeat index
        ([], [0], 2.0),  # downbeat without beats
        ([0.0, 0.5], [0], float("nan")),  # duration not a number
        ([0.0, 0.5], [0], float("inf")),  # infinite duration
    ],
)
def test_invalid_inputs_raise(beats: list[float], downbeats: list[int], duration: float) -> None:
    with pytest.raises(ValueError):
        BeatGrid(np.array(beats, dtype=np.float64), np.array(downbeats), duration, FOUR)


def test_inputs_are_coerced_to_arrays() -> None:
    grid = BeatGrid([0.0, 0.5, 1.0, 1.5], [0], 2.0, FOUR)  # type: ignore[arg-type]
    assert grid.beat_times.dtype == np.float64 and grid.downbeats.dtype == np.int64
    np.testing.assert_array_equal(grid.beat_in_bar, [1, 2, 3, 4])
