"""Bars from beats: re-anchoring after tracker errors, meter estimation, time_signature=auto."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from didactic.audio import Audio
from didactic.config import TimeSignature
from didactic.stages.bars import decode_downbeats, downbeat_evidence
from didactic.stages.rhythm import BeatTracker
from didactic.synth import SongSpec, render_song

SR = 22050


def _mono(spec: SongSpec) -> tuple[object, np.ndarray]:
    song = render_song(spec)
    return song, Audio(song.mix, song.sr).mono(SR)


@pytest.fixture(scope="module")
def four_four():
    """16 bars of 4/4 at 100 BPM after a one-beat pickup."""
    return _mono(SongSpec(tempo_bpm=100, n_bars=16, pickup_beats=1, seed=11, sr=SR))


def _downbeat_times(y: np.ndarray, beats: np.ndarray, bpb: int) -> np.ndarray:
    return beats[decode_downbeats(downbeat_evidence(y, SR, beats).score, bpb)]


def test_true_beats_give_true_downbeats(four_four) -> None:
    song, y = four_four
    np.testing.assert_allclose(_downbeat_times(y, song.beat_times, 4), song.downbeat_times)


@pytest.mark.parametrize("error", ["doubled", "missed"])
def test_a_doubled_or_missed_beat_shifts_one_bar_only(four_four, error: str) -> None:
    """A beat the tracker inserted (or dropped) in bar 5 makes bar 5 one beat longer (shorter);
    every later bar still starts on its true downbeat. Counting bars blindly from the first
    downbeat would shift all of them."""
    song, y = four_four
    beats = song.beat_times
    k = 1 + 4 * 4 + 2  # beat 3 of bar 5 (after the one-beat pickup)
    if error == "doubled":
        beats = np.insert(beats, k, 0.5 * (beats[k - 1] + beats[k]))
    else:
        beats = np.delete(beats, k)
    found = _downbeat_times(y, beats, 4)
    true = song.downbeat_times
    assert found.size == true.size
    np.testing.assert_allclose(found, true)
    blind = beats[np.flatnonzero(beats == true[0])[0] :: 4]
    assert not np.isin(true[6:], blind).any()  # what re-anchoring avoided


def test_no_evidence_keeps_the_first_beat_as_bar_one() -> None:
    np.testing.assert_array_equal(decode_downbeats(np.zeros(12), 3), [0, 3, 6, 9])
    np.testing.assert_array_equal(decode_downbeats(np.full(12, np.nan), 4), [0, 4, 8])


def test_noise_alone_does_not_re_anchor() -> None:
    """Without a sustained shift in the evidence, bars stay strictly regular."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 0.5, 64)
    z[::4] += 2.0
    z[30] += 3.0  # one loud off-beat is not a new bar
    np.testing.assert_array_equal(decode_downbeats(z, 4), np.arange(0, 64, 4))


@pytest.mark.parametrize(
    ("meter", "tempo", "swing"),
    [
        ("3/4", 120.0, 0.0),
        ("2/4", 100.0, 0.0),
        ("4/4", 96.0, 0.0),
        ("6/8", 70.0, 0.0),
        ("12/8", 60.0, 0.0),
        ("4/4", 110.0, 0.3),  # swung eighths fill only one third: still simple
        ("3/4", 150.0, 0.0),
    ],
)
def test_auto_meter_on_rendered_songs(meter: str, tempo: float, swing: float) -> None:
    song, y = _mono(
        SongSpec(tempo_bpm=tempo, time_signature=meter, n_bars=16, swing=swing, seed=3, sr=SR)
    )
    grid = BeatTracker()(y, SR, 512, None)
    assert str(grid.meter) == meter
    assert 0.0 < grid.meter_confidence <= 1.0
    starts = grid.beat_times[grid.downbeats[: song.downbeat_times.size]]
    assert np.abs(starts - song.downbeat_times).max() < 0.05


def test_given_meter_has_no_confidence(four_four) -> None:
    _, y = four_four
    grid = BeatTracker()(y, SR, 512, TimeSignature(4, 4))
    assert np.isnan(grid.meter_confidence)


def test_time_signature_auto_from_the_command_line(cli, make_song, tmp_path) -> None:
    """The songs table carries the estimated meter and its confidence; a given one has null."""
    files = make_song("waltz", tempo_bpm=132, time_signature="3/4", n_bars=12, sr=SR)
    common = [f"song={files.mix}", "separator=none", "transcriber=none"]
    res = cli(*common, "time_signature=auto", f"hydra.run.dir={tmp_path / 'auto'}")
    assert res.code == 0, res.err
    songs = pq.read_table(tmp_path / "auto" / "tables" / "songs").to_pylist()[0]
    assert songs["time_signature"] == "3/4" and songs["beats_per_bar"] == 3
    assert 0 < songs["meter_confidence"] <= 1
    bars = pq.read_table(tmp_path / "auto" / "tables" / "bars").to_pandas()
    assert (bars["n_beats"].iloc[1:-1] == 3).all()

    res = cli(*common, "time_signature=3/4", f"hydra.run.dir={tmp_path / 'given'}")
    assert res.code == 0, res.err
    songs = pq.read_table(tmp_path / "given" / "tables" / "songs").to_pylist()[0]
    assert songs["time_signature"] == "3/4" and songs["meter_confidence"] is None


def test_auto_needs_a_grid_that_fits_every_meter(cli, make_song) -> None:
    files = make_song("waltz", tempo_bpm=132, time_signature="3/4", n_bars=12, sr=SR)
    res = cli(f"song={files.mix}", "separator=none", "time_signature=auto", "align.grid=1/12")
    assert res.code == 2
    assert res.err.count("\n") == 1 and "align.grid" in res.err and "1/12" in res.err
