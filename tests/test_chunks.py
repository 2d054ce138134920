"""Tests for didactic.stages.chunks.bar_chunks: bars cut to the sample, tiling the signal."""

from __future__ import annotations

import numpy as np
import pytest

from didactic.config import TimeSignature
from didactic.grid import BeatGrid
from didactic.stages.chunks import bar_chunks
from didactic.synth import RenderedSong, SongSpec, render_song

NATIVE_SR = 44100


@pytest.fixture(scope="module")
def song() -> RenderedSong:
    """Stereo, native rate, 4/4 with two pickup beats after 0.3 s of silence."""
    return render_song(
        SongSpec(n_bars=4, pickup_beats=2, leading_silence_s=0.3, sr=NATIVE_SR, trailing_s=0.4)
    )


@pytest.fixture(scope="module")
def grid(song: RenderedSong) -> BeatGrid:
    downbeats = np.searchsorted(song.beat_times, song.downbeat_times)
    return BeatGrid(song.beat_times, downbeats, song.duration_s, TimeSignature(4, 4))


def expected_lengths(grid: BeatGrid, sr: int, n: int) -> np.ndarray:
    """Samples per bar: from each bar's start, rounded to a sample, to the next one's."""
    cuts = [round(float(s) * sr) for s in grid.bar_starts] + [n]
    return np.diff(cuts)


@pytest.mark.parametrize("channels", ["stereo", "mono_1d", "mono_2d"])
def test_concatenation_gives_back_the_input(
    song: RenderedSong, grid: BeatGrid, channels: str
) -> None:
    x = {"stereo": song.mix, "mono_1d": song.mix[0], "mono_2d": song.mix[:1]}[channels]
    chunks = bar_chunks(x, song.sr, grid)
    back = np.concatenate([c for _, c in chunks], axis=-1)
    assert back.dtype == x.dtype and back.shape == x.shape
    np.testing.assert_array_equal(back, x)
    for _, c in chunks:
        assert c.shape[:-1] == x.shape[:-1]


def test_bar_indices_and_lengths_match_the_grid(song: RenderedSong, grid: BeatGrid) -> None:
    sr, n = song.sr, song.mix.shape[-1]
    chunks = bar_chunks(song.mix, sr, grid)
    assert [b for b, _ in chunks] == [0, 1, 2, 3, 4] == grid.bar_numbers.tolist()
    lengths = np.array([c.shape[-1] for _, c in chunks])
    np.testing.assert_array_equal(lengths, expected_lengths(grid, sr, n))
    # Known truth: bar 0 is 0.3 s + 2 beats = 1.3 s; bars 1-3 are 2 s; bar 4 runs to the end.
    np.testing.assert_array_equal(lengths[:4], [round(1.3 * sr), 2 * sr, 2 * sr, 2 * sr])
    assert lengths[-1] == n - round(7.3 * sr)
    # Each chunk starts at the sample of its bar's start.
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for (_, c), s in zip(chunks, starts, strict=True):
        np.testing.assert_array_equal(c, song.mix[:, s : s + c.shape[-1]])


def test_chunks_at_analysis_rate_cut_the_same_seconds(song: RenderedSong, grid: BeatGrid) -> None:
    """The grid is in seconds: a half-rate signal is cut at the same times."""
    sr = NATIVE_SR // 2
    x = song.mix[0, ::2].copy()
    chunks = bar_chunks(x, sr, grid)
    lengths = np.array([c.size for _, c in chunks])
    np.testing.assert_array_equal(lengths, expected_lengths(grid, sr, x.size))
    np.testing.assert_array_equal(lengths[1:4], 2 * sr)
    np.testing.assert_array_equal(np.concatenate([c for _, c in chunks]), x)


def test_grid_without_bar0_and_rounding() -> None:
    sr = 1000
    beats = np.array([0.0, 0.3334, 0.6667, 1.0004, 1.3336])  # bars of 2 beats at odd times
    grid = BeatGrid(beats, np.array([0, 2, 4]), 1.6, TimeSignature(2, 4))
    x = np.arange(1600, dtype=np.float32)
    chunks = bar_chunks(x, sr, grid)
    assert [b for b, _ in chunks] == [1, 2, 3]
    assert [c.size for _, c in chunks] == [667, 667, 266]  # cuts at 0, 667, 1334
    assert [c[0] for _, c in chunks] == [0.0, 667.0, 1334.0]


def test_empty_grid_is_one_chunk() -> None:
    grid = BeatGrid(np.array([]), np.array([], dtype=np.int64), 1.0, TimeSignature(4, 4))
    x = np.ones((2, 1000), np.float32)
    chunks = bar_chunks(x, 1000, grid)
    assert len(chunks) == 1 and chunks[0][0] == 0
    np.testing.assert_array_equal(chunks[0][1], x)
