"""Tempo, beats and bars against songs rendered from known MIDI."""

from __future__ import annotations

import numpy as np
import pytest

from didactic.audio import Audio
from didactic.config import TimeSignature
from didactic.errors import StageError
from didactic.stages.rhythm import BeatTracker
from didactic.synth import SongSpec, render_song

SR = 22050
HOP = 512

CASES = [
    # tempo, meter, leading silence (s); first downbeat is the first beat in all of them
    (75.0, "4/4", 0.0),
    (90.0, "4/4", 0.0),
    (120.0, "4/4", 0.5),
    (140.0, "4/4", 1.0),
    (100.0, "3/4", 0.0),
    (128.0, "3/4", 0.5),
    (96.0, "6/8", 0.0),
]


def _track(spec: SongSpec):
    song = render_song(spec)
    grid = BeatTracker()(
        Audio(song.mix, song.sr).mono(SR), SR, HOP, TimeSignature.parse(spec.time_signature)
    )
    return song, grid


@pytest.mark.parametrize(("tempo", "meter", "silence"), CASES)
def test_tempo_and_downbeats_match_truth(tempo: float, meter: str, silence: float) -> None:
    spec = SongSpec(
        tempo_bpm=tempo, time_signature=meter, n_bars=10, leading_silence_s=silence, seed=5
    )
    song, grid = _track(spec)
    assert grid.tempo_bpm == pytest.approx(tempo, rel=0.02)
    assert grid.meter.beats_per_bar == song.beats_per_bar
    # Bar k (k >= 1) must start within 50 ms of the k-th true downbeat.
    rows = {int(b): i for i, b in enumerate(grid.bar_numbers)}
    starts = np.array(
        [grid.beat_times[grid.downbeats[k - 1]] for k in range(1, len(song.downbeat_times) + 1)]
    )
    err = np.abs(starts - song.downbeat_times)
    assert err.max() < 0.050, f"bar start errors (ms): {np.round(1000 * err).astype(int)}"
    # Leading silence longer than the bar-0 threshold is bar 0, and holds no beat.
    assert (0 in rows) == (silence > 0)
    if silence:
        assert grid.bar_ends[0] == pytest.approx(silence, abs=0.05)
        assert grid.bar_n_beats[0] == 0


def test_every_true_beat_is_found() -> None:
    song, grid = _track(SongSpec(tempo_bpm=110, n_bars=8, leading_silence_s=0.3, seed=2))
    dist = np.abs(grid.beat_times[None, :] - song.beat_times[:, None]).min(axis=1)
    assert dist.max() < 0.05, f"worst beat error {1000 * dist.max():.0f} ms"


def test_bars_cover_song_without_gaps() -> None:
    song, grid = _track(SongSpec(tempo_bpm=120, n_bars=6, leading_silence_s=0.7, trailing_s=2.0))
    assert grid.bar_starts[0] == 0.0
    assert grid.bar_ends[-1] == pytest.approx(song.duration_s)
    np.testing.assert_array_equal(grid.bar_starts[1:], grid.bar_ends[:-1])
    assert np.all(np.diff(grid.bar_numbers) == 1) and grid.bar_numbers.min() >= 0


def test_silence_has_no_beat() -> None:
    with pytest.raises(StageError, match="no detectable beat"):
        BeatTracker()(np.zeros(SR * 5, dtype=np.float32), SR, HOP, TimeSignature(4, 4))


@pytest.mark.parametrize(
    "spec",
    [
        SongSpec(tempo_bpm=90, time_signature="4/4", n_bars=8, pickup_beats=1, seed=1),
        SongSpec(
            tempo_bpm=120,
            time_signature="4/4",
            n_bars=8,
            pickup_beats=3,
            seed=2,
            leading_silence_s=0.7,
        ),
        SongSpec(tempo_bpm=100, time_signature="3/4", n_bars=8, pickup_beats=2, seed=3),
        SongSpec(tempo_bpm=70, time_signature="12/8", n_bars=6, pickup_beats=2, seed=4),
        SongSpec(tempo_bpm=110, n_bars=8, drumless_intro_bars=2, seed=5),
        SongSpec(tempo_bpm=100, tempo_end_bpm=125, n_bars=8, pickup_beats=1, seed=6),
    ],
    ids=[
        "4/4-pickup1",
        "4/4-pickup3-silence",
        "3/4-pickup2",
        "12/8-pickup2",
        "drumless-intro",
        "accelerando-pickup1",
    ],
)
def test_downbeats_found_after_pickups_and_intros(spec: SongSpec) -> None:
    """Bar 1 starts on the true first downbeat; pickup beats are beats of bar 0."""
    song, grid = _track(spec)
    n_true = len(song.downbeat_times)
    starts = grid.beat_times[grid.downbeats[:n_true]]
    err = np.abs(starts - song.downbeat_times)
    assert err.max() < 0.050, f"bar start errors (ms): {np.round(1000 * err).astype(int)}"
    if spec.pickup_beats:
        assert grid.bar_numbers[0] == 0 and grid.bar_n_beats[0] == spec.pickup_beats
        pickup_in_bar = grid.beat_in_bar[: spec.pickup_beats]
        bpb = spec.meter.beats_per_bar
        assert pickup_in_bar.tolist() == list(range(bpb - spec.pickup_beats + 1, bpb + 1))


def test_fast_song_is_not_read_at_half_tempo_unless_asked() -> None:
    """170 BPM with kick-snare backbeat: the tracker's half-tempo reading is doubled back
    (the off-beats below 2 kHz are snares, not subdivisions); a bpm_range that excludes 170
    keeps the half-time reading the user asked for."""
    spec = SongSpec(tempo_bpm=170, n_bars=8, seed=7)
    song = render_song(spec)
    y = Audio(song.mix, song.sr).mono(SR)
    default = BeatTracker()(y, SR, HOP, TimeSignature(4, 4))
    half = BeatTracker(bpm_range=[60, 100])(y, SR, HOP, TimeSignature(4, 4))
    assert default.tempo_bpm == pytest.approx(170, rel=0.02)
    assert half.tempo_bpm == pytest.approx(85, rel=0.02)
    # Every true beat is found at the default tempo.
    dist = np.abs(default.beat_times[None, :] - song.beat_times[:, None]).min(axis=1)
    assert dist.max() < 0.05


def test_clicks_before_the_music_do_not_become_bars() -> None:
    """Stray clicks in a 4 s lead-in (off any grid) are onsets, but not an intro: no beat is
    placed in the lead-in, which stays bar 0."""
    spec = SongSpec(tempo_bpm=100, n_bars=8, leading_silence_s=4.0, seed=3, sr=SR)
    song = render_song(spec)
    y = Audio(song.mix, song.sr).mono(SR).copy()
    for t in (0.37, 1.91, 3.05):
        i = int(t * SR)
        y[i : i + 40] += 0.5 * np.hanning(40).astype(y.dtype)
    grid = BeatTracker()(y, SR, HOP, TimeSignature(4, 4))
    assert grid.beat_times[0] == pytest.approx(4.0, abs=0.05)
    assert grid.bar_numbers[0] == 0 and grid.bar_ends[0] == pytest.approx(4.0, abs=0.05)
