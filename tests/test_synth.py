"""Tests for didactic.synth: exact ground truth, audio invariants, MIDI and file round-trips."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from didactic.synth import (
    HAT,
    KICK,
    SNARE,
    STEM_NAMES,
    Note,
    RenderedSong,
    SongSpec,
    load_truth,
    parse_time_signature,
    render_song,
    write_song,
)

SR = 22050  # half rate keeps the suite fast; the synth is rate-agnostic


def _song(**kw: object) -> RenderedSong:
    """Render a short song at the test sample rate."""
    base = {"n_bars": 4, "sr": SR, "trailing_s": 0.5}
    base.update(kw)
    return render_song(SongSpec(**base))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pickup_song() -> RenderedSong:
    """120 BPM 4/4, two pickup beats after 0.5 s of silence (the reference example)."""
    return _song(pickup_beats=2, leading_silence_s=0.5)


def _rms(x: np.ndarray) -> float:
    """RMS over all channels and samples."""
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def test_beat_grid_with_pickup_and_leading_silence(pickup_song: RenderedSong) -> None:
    s = pickup_song
    assert s.beat_times.dtype == np.float64
    assert len(s.beat_times) == 2 + 4 * 4
    assert s.beat_times[0] == 0.5
    assert s.downbeat_times[0] == pytest.approx(0.5 + 2 * 0.5, abs=1e-12)
    assert s.first_downbeat_s == s.downbeat_times[0]
    assert len(s.downbeat_times) == s.spec.n_bars
    assert s.beats_per_bar == 4
    np.testing.assert_allclose(np.diff(s.beat_times), 0.5, atol=1e-12)
    np.testing.assert_allclose(s.downbeat_times, s.beat_times[2::4], atol=0)
    assert s.duration_s == pytest.approx(0.5 + 18 * 0.5 + 0.5, abs=1.0 / SR)


def test_shapes_dtypes_peak_and_mix_is_sum(pickup_song: RenderedSong) -> None:
    s = pickup_song
    assert set(s.stems) == set(STEM_NAMES) == set(s.notes)
    assert s.mix.dtype == np.float32 and s.mix.shape[0] == 2 and s.sr == SR
    for stem in STEM_NAMES:
        assert s.stems[stem].dtype == np.float32 and s.stems[stem].shape == s.mix.shape
        assert not np.array_equal(s.stems[stem][0], s.stems[stem][1]), f"{stem} not panned"
    total = sum(s.stems[k].astype(np.float64) for k in STEM_NAMES)
    np.testing.assert_allclose(s.mix, total, atol=1e-6)
    peak = float(np.abs(s.mix).max())
    assert 0.9 - 1e-4 < peak <= 0.9


def test_mono_render() -> None:
    s = _song(channels=1, n_bars=2)
    assert s.mix.shape == (1, s.stems["bass"].shape[1])
    assert 0.9 - 1e-4 < float(np.abs(s.mix).max()) <= 0.9


def test_leading_silence_is_exact_digital_zero(pickup_song: RenderedSong) -> None:
    s = pickup_song
    n = int(np.floor(0.5 * SR))
    assert not np.any(s.mix[:, :n])
    for stem in STEM_NAMES:
        assert not np.any(s.stems[stem][:, :n])
    assert np.any(s.mix[:, n : n + SR // 10])


def test_determinism_and_seed() -> None:
    a, b, c = _song(n_bars=2), _song(n_bars=2), _song(n_bars=2, seed=1)
    assert np.array_equal(a.mix, b.mix)
    assert all(np.array_equal(a.stems[k], b.stems[k]) for k in STEM_NAMES)
    assert a.notes == b.notes
    assert not np.array_equal(a.mix, c.mix)
    np.testing.assert_array_equal(a.beat_times, c.beat_times)


@pytest.mark.parametrize(("ts", "bpb", "hats_per_bar"), [("6/8", 2, 6), ("12/8", 4, 12)])
def test_compound_meter(ts: str, bpb: int, hats_per_bar: int) -> None:
    s = _song(time_signature=ts, tempo_bpm=90.0, n_bars=3)
    assert s.beats_per_bar == bpb
    assert len(s.beat_times) == 3 * bpb and len(s.downbeat_times) == 3
    np.testing.assert_allclose(np.diff(s.beat_times), 60.0 / 90.0, atol=1e-12)  # dotted quarter
    hats = [n for n in s.notes["drums"] if n.pitch == HAT]
    assert len(hats) == 3 * hats_per_bar  # eighth notes are still articulated
    np.testing.assert_allclose(np.diff([n.start_s for n in hats]), 60.0 / 90.0 / 3, atol=1e-9)


@pytest.mark.parametrize(("ts", "bpb"), [("2/4", 2), ("3/4", 3), ("4/4", 4), ("6/8", 2)])
def test_meters_and_drum_pattern(ts: str, bpb: int) -> None:
    s = _song(time_signature=ts, n_bars=2)
    assert parse_time_signature(ts).beats_per_bar == bpb == s.beats_per_bar
    kicks = [n.start_s for n in s.notes["drums"] if n.pitch == KICK]
    snares = [n.start_s for n in s.notes["drums"] if n.pitch == SNARE]
    assert set(s.downbeat_times) <= set(kicks)
    assert snares and not set(snares) & set(s.downbeat_times)
    assert set(snares) <= set(s.beat_times)


def test_bad_time_signature() -> None:
    with pytest.raises(ValueError):
        parse_time_signature("4-4")
    with pytest.raises(ValueError):
        render_song(SongSpec(time_signature="4/3"))


def test_4_4_arrangement_rules(pickup_song: RenderedSong) -> None:
    s = pickup_song
    beats = set(s.beat_times.tolist())
    bar_starts = s.downbeat_times
    kicks = [n.start_s for n in s.notes["drums"] if n.pitch == KICK]
    snares = [n.start_s for n in s.notes["drums"] if n.pitch == SNARE]
    np.testing.assert_allclose(kicks, np.sort(np.r_[bar_starts, bar_starts + 1.0]), atol=1e-12)
    np.testing.assert_allclose(snares, np.sort(np.r_[bar_starts + 0.5, bar_starts + 1.5]))
    assert len([n for n in s.notes["drums"] if n.pitch == HAT]) == 8 * 4
    # No drums on the pickup; bass and lead play on it.
    assert min(n.start_s for n in s.notes["drums"]) == pytest.approx(s.first_downbeat_s)
    assert s.notes["bass"][0].start_s == 0.5 and s.notes["vocals"][0].start_s == 0.5
    # One bass note per beat, octave 2, ~90% of a beat long.
    assert [n.start_s for n in s.notes["bass"]] == s.beat_times.tolist()
    assert all(36 <= n.pitch <= 48 for n in s.notes["bass"])
    np.testing.assert_allclose([n.end_s - n.start_s for n in s.notes["bass"]], 0.45, atol=1e-3)
    assert all(55 <= n.pitch <= 72 for n in s.notes["other"])
    assert len(s.notes["other"]) == 3 * s.spec.n_bars
    assert all(64 <= n.pitch <= 80 and n.start_s in beats for n in s.notes["vocals"])
    v = s.notes["vocals"]
    assert all(a.end_s < b.start_s for a, b in itertools.pairwise(v))  # gaps
    kick_vel = {n.start_s: n.velocity for n in s.notes["drums"] if n.pitch == KICK}
    assert kick_vel[bar_starts[0]] > kick_vel[bar_starts[0] + 1.0]  # accented downbeat


def test_drumless_intro_and_swing() -> None:
    s = _song(drumless_intro_bars=2, swing=0.2)
    assert min(n.start_s for n in s.notes["drums"]) == pytest.approx(s.downbeat_times[2])
    assert not np.any(s.stems["drums"][:, : round(s.downbeat_times[2] * SR)])
    hats = np.array([n.start_s for n in s.notes["drums"] if n.pitch == HAT])
    offbeats = hats[1::2] - hats[0::2]
    np.testing.assert_allclose(offbeats, 0.5 * (0.5 + 0.1), atol=1e-9)


def test_tempo_ramp_follows_integrated_curve() -> None:
    s = _song(tempo_bpm=100.0, tempo_end_bpm=140.0, n_bars=4, pickup_beats=1)
    ibi = np.diff(s.beat_times)
    assert np.all(np.diff(ibi) < 0)  # accelerating: strictly shrinking intervals
    assert ibi[0] == pytest.approx(60 / 100, rel=0.03)
    assert ibi[-1] == pytest.approx(60 / 140, rel=0.03)
    n, k = 17, 40.0 / 17
    expect = 60.0 / k * np.log1p(k * np.arange(n) / 100.0)
    np.testing.assert_allclose(s.beat_times, expect, atol=1e-12)
    np.testing.assert_allclose([n.start_s for n in s.notes["bass"]], s.beat_times, atol=1e-12)
    slow = _song(tempo_bpm=130.0, tempo_end_bpm=90.0, n_bars=2)
    assert np.all(np.diff(np.diff(slow.beat_times)) > 0)


def _midi_notes(pm: pretty_midi.PrettyMIDI, stem: str) -> list[tuple[int, float, float, int]]:
    """(pitch, start, end, velocity) of the instrument named ``stem``, sorted."""
    (inst,) = [i for i in pm.instruments if i.name == stem]
    return sorted((n.pitch, n.start, n.end, n.velocity) for n in inst.notes)


def _truth_notes(notes: list[Note]) -> list[tuple[int, float, float, int]]:
    """Truth notes as sorted tuples comparable with ``_midi_notes``."""
    return sorted((n.pitch, n.start_s, n.end_s, n.velocity) for n in notes)


def test_midi_matches_truth() -> None:
    s = _song(time_signature="3/4", pickup_beats=1, leading_silence_s=0.3, tempo_end_bpm=150.0)
    assert [i.name for i in s.midi.instruments] == list(STEM_NAMES)
    assert [i.is_drum for i in s.midi.instruments] == [True, False, False, False]
    for stem in STEM_NAMES:
        assert _midi_notes(s.midi, stem) == _truth_notes(s.notes[stem])
    ts = s.midi.time_signature_changes
    assert all((t.numerator, t.denominator) == (3, 4) for t in ts)
    # pretty_midi's own beat grid (from our tempo map) agrees with the truth from bar 1 on.
    beats = s.midi.get_beats()
    beats = beats[(beats >= s.first_downbeat_s - 1e-9) & (beats < s.beat_times[-1] + 1e-6)]
    np.testing.assert_allclose(beats, s.beat_times[1:], atol=1e-9)
    downs = s.midi.get_downbeats()
    downs = downs[(downs >= s.first_downbeat_s - 1e-9) & (downs < s.beat_times[-1] + 1e-6)]
    np.testing.assert_allclose(downs, s.downbeat_times, atol=1e-9)
    assert s.midi.get_tempo_changes()[1][1] == pytest.approx(120.0, rel=0.02)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_write_song_round_trip(tmp_path: Path, pickup_song: RenderedSong, fmt: str) -> None:
    s = pickup_song
    paths = write_song(s, tmp_path / "out", name="demo", fmt=fmt)
    ext = fmt.lower()
    assert paths["mix"] == tmp_path / "out" / f"demo.{ext}"
    audio, sr = sf.read(paths["mix"], dtype="float32", always_2d=True)
    assert sr == SR and audio.shape == s.mix.T.shape
    np.testing.assert_allclose(audio, s.mix.T, atol=2.0 / 32768)
    for stem in STEM_NAMES:
        p = paths["stems"][stem]
        assert p == tmp_path / "out" / "demo_stems" / f"{stem}.{ext}"
        stem_audio, _ = sf.read(p, dtype="float32", always_2d=True)
        np.testing.assert_allclose(stem_audio, s.stems[stem].T, atol=2.0 / 32768)
    pm = pretty_midi.PrettyMIDI(str(paths["midi"]))
    for stem in STEM_NAMES:
        got, want = _midi_notes(pm, stem), _truth_notes(s.notes[stem])
        assert [g[0] for g in got] == [w[0] for w in want]
        np.testing.assert_allclose([g[1:3] for g in got], [w[1:3] for w in want], atol=1e-3)
    truth = load_truth(paths["truth"])
    assert truth["spec"] == s.spec
    assert truth["beat_times"].dtype == np.float64
    np.testing.assert_array_equal(truth["beat_times"], s.beat_times)
    np.testing.assert_array_equal(truth["downbeat_times"], s.downbeat_times)
    assert truth["notes"] == s.notes


def test_write_song_rejects_unknown_format(tmp_path: Path, pickup_song: RenderedSong) -> None:
    with pytest.raises(ValueError):
        write_song(pickup_song, tmp_path, fmt="MP3")


def test_each_stem_has_energy_at_its_onsets(pickup_song: RenderedSong) -> None:
    s = pickup_song
    win = round(0.05 * SR)
    for stem in STEM_NAMES:
        audio, notes = s.stems[stem], s.notes[stem]
        first = round(notes[0].start_s * SR)
        assert not np.any(audio[:, :first]), f"{stem} sounds before its first note"
        silence = _rms(audio[:, :first])
        onsets = [n for n in notes if stem != "drums" or n.pitch == KICK]
        for note in onsets:
            i = round(note.start_s * SR)
            assert _rms(audio[:, i : i + win]) > max(100 * silence, 1e-3), (stem, note)
        assert audio[:, first].max() == 0.0 or stem == "drums"  # tonal attacks start at zero


def test_bass_onsets_are_sample_accurate() -> None:
    s = _song(leading_silence_s=0.25, n_bars=1)
    bass = s.stems["bass"][0]
    for note in s.notes["bass"][1:]:
        i = round(note.start_s * SR)
        before = _rms(bass[i - 64 : i])  # tail of the previous note has fully released
        assert before < 1e-6 and _rms(bass[i : i + 256]) > 1e-3


def test_spec_is_frozen_and_validated() -> None:
    spec = SongSpec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.tempo_bpm = 100.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        render_song(SongSpec(swing=0.7))
