"""Tests for didactic.stages.features: per-bar features of signals whose values are known."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from didactic.config import TimeSignature
from didactic.grid import BeatGrid
from didactic.stages.features import (
    LOUDNESS_FLOOR_DBFS,
    PITCH_CLASSES,
    BarFeatureExtractor,
    feature_columns,
)

SR = 22050
HOP = 512
FOUR = TimeSignature(4, 4)
SHAPE = [
    "spectral_centroid_hz",
    "spectral_bandwidth_hz",
    "spectral_rolloff_hz",
    "spectral_flatness",
    *(f"spectral_contrast_{k}" for k in range(7)),
]


def bars_of(seconds: float, n_bars: int) -> BeatGrid:
    """A 120 BPM 4/4 grid of ``n_bars`` bars of ``seconds`` each, starting at 0 s."""
    n_beats = 4 * n_bars
    beats = np.arange(n_beats) * (seconds / 4)
    return BeatGrid(beats, np.arange(0, n_beats, 4), seconds * n_bars, FOUR)


def sine(freq: float, seconds: float, amp: float = 1.0) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(round(seconds * SR)) / SR)


@pytest.fixture(scope="module")
def extract() -> BarFeatureExtractor:
    return BarFeatureExtractor()


@pytest.fixture(scope="module")
def silence_then_sine(extract: BarFeatureExtractor) -> dict[str, np.ndarray]:
    """Bar 1: 2 s of zeros; bar 2: 2 s of a full-scale 440 Hz sine."""
    y = np.concatenate([np.zeros(2 * SR), sine(440.0, 2.0)])
    return extract(y, SR, HOP, bars_of(2.0, 2))


@pytest.fixture(scope="module")
def sine_then_silence(extract: BarFeatureExtractor) -> dict[str, np.ndarray]:
    y = np.concatenate([sine(440.0, 2.0), np.zeros(2 * SR)])
    return extract(y, SR, HOP, bars_of(2.0, 2))


def test_columns_dtypes_and_one_value_per_bar(silence_then_sine: dict[str, np.ndarray]) -> None:
    out = silence_then_sine
    assert list(out) == feature_columns()
    assert len(feature_columns()) == len(set(feature_columns())) == 3 + 4 + 7 + 26 + 12 + 1
    for name, col in out.items():
        assert col.shape == (2,), name
        assert col.dtype == (np.int32 if name == "onset_count" else np.float32), name


def test_columns_follow_the_parameters() -> None:
    ex = BarFeatureExtractor(n_mfcc=5, contrast_bands=3)
    assert ex.columns == feature_columns(5, 3)
    y = np.random.default_rng(0).standard_normal(2 * SR) * 0.1
    out = ex(y, SR, HOP, bars_of(1.0, 2))
    assert list(out) == feature_columns(5, 3)
    assert "mfcc_mean_04" in out and "mfcc_mean_05" not in out
    assert "spectral_contrast_3" in out and "spectral_contrast_4" not in out


def test_rms_and_loudness(silence_then_sine: dict[str, np.ndarray]) -> None:
    out = silence_then_sine
    assert out["rms"][0] == 0.0
    assert out["rms"][1] == pytest.approx(1 / np.sqrt(2), abs=1e-5)
    assert out["loudness_dbfs"][0] == LOUDNESS_FLOOR_DBFS == -120.0
    assert out["loudness_dbfs"][1] == pytest.approx(-3.0103, abs=0.05)


def test_full_scale_square_wave_reads_zero_db(extract: BarFeatureExtractor) -> None:
    y = np.sign(sine(441.0, 2.0) + 1e-9)  # +-1 only
    out = extract(y, SR, HOP, bars_of(1.0, 2))
    np.testing.assert_allclose(out["rms"], 1.0, atol=1e-6)
    np.testing.assert_allclose(out["loudness_dbfs"], 0.0, atol=1e-4)


def test_loudness_scales_with_amplitude(extract: BarFeatureExtractor) -> None:
    y = np.concatenate([sine(440.0, 1.0, 0.5), sine(440.0, 1.0, 0.05), sine(440.0, 1.0, 1e-7)])
    out = extract(y, SR, HOP, bars_of(1.0, 3))
    expected = 20 * np.log10(np.array([0.5, 0.05]) / np.sqrt(2))
    np.testing.assert_allclose(out["loudness_dbfs"][:2], expected, atol=0.01)
    assert out["loudness_dbfs"][2] == LOUDNESS_FLOOR_DBFS  # -143 dB reads as the floor
    assert out["rms"][2] == pytest.approx(1e-7 / np.sqrt(2), rel=1e-3)


def test_zero_crossing_rate(silence_then_sine: dict[str, np.ndarray]) -> None:
    out = silence_then_sine
    assert out["zcr"][0] == 0.0
    assert out["zcr"][1] == pytest.approx(2 * 440.0 / SR, rel=0.01)


@pytest.mark.parametrize("freq", [100.0, 1000.0, 3000.0])
def test_zcr_of_sines(extract: BarFeatureExtractor, freq: float) -> None:
    out = extract(sine(freq, 2.0, 0.5), SR, HOP, bars_of(1.0, 2))
    np.testing.assert_allclose(out["zcr"], 2 * freq / SR, rtol=0.01)


def test_spectral_centroid_of_sine(silence_then_sine: dict[str, np.ndarray]) -> None:
    out = silence_then_sine
    assert out["spectral_centroid_hz"][1] == pytest.approx(440.0, rel=0.03)
    assert out["spectral_rolloff_hz"][1] == pytest.approx(440.0, rel=0.1)
    assert out["spectral_bandwidth_hz"][1] < 100.0
    assert out["spectral_flatness"][1] < 1e-3


@pytest.mark.parametrize("order", ["silence_then_sine", "sine_then_silence"])
def test_spectral_shape_is_nan_on_a_silent_bar(order: str, request: pytest.FixtureRequest) -> None:
    out = request.getfixturevalue(order)
    silent, loud = (0, 1) if order == "silence_then_sine" else (1, 0)
    for name in SHAPE:
        assert np.isnan(out[name][silent]), name
        assert np.isfinite(out[name][loud]), name
    # Features defined on silence stay finite there.
    for name in ("rms", "loudness_dbfs", "zcr", "mfcc_mean_00", "mfcc_std_00", "chroma_a"):
        assert np.isfinite(out[name][silent]), name


def test_all_silent_signal(extract: BarFeatureExtractor) -> None:
    out = extract(np.zeros(3 * SR), SR, HOP, bars_of(1.0, 3))
    np.testing.assert_array_equal(out["rms"], 0.0)
    np.testing.assert_array_equal(out["loudness_dbfs"], -120.0)
    np.testing.assert_array_equal(out["zcr"], 0.0)
    np.testing.assert_array_equal(out["onset_count"], 0)
    for name in SHAPE:
        assert np.isnan(out[name]).all(), name
    # Constant log-mel: the MFCCs do not move within a bar.
    for k in range(13):
        assert np.all(out[f"mfcc_std_{k:02d}"] < 1e-3)
    np.testing.assert_allclose(out["mfcc_mean_00"], out["mfcc_mean_00"][0])


def test_noise_is_flat_and_bright(extract: BarFeatureExtractor) -> None:
    rng = np.random.default_rng(3)
    y = np.concatenate([rng.standard_normal(SR) * 0.1, sine(440.0, 1.0, 0.3)])
    out = extract(y, SR, HOP, bars_of(1.0, 2))
    assert out["spectral_flatness"][0] > 0.3 > 1e-3 > out["spectral_flatness"][1]
    assert out["spectral_centroid_hz"][0] == pytest.approx(SR / 4, rel=0.1)
    assert out["zcr"][0] == pytest.approx(0.5, abs=0.02)


def test_mfcc_in_absolute_db(extract: BarFeatureExtractor) -> None:
    """Doubling the level adds 20 log10(2) dB to every mel band: c0 grows by that * sqrt(n_mels)
    (orthonormal DCT), the other coefficients do not move."""
    y = np.random.default_rng(4).standard_normal(2 * SR) * 0.05
    grid = bars_of(1.0, 2)
    a = extract(y, SR, HOP, grid)
    b = extract(2 * y, SR, HOP, grid)
    step = 20 * np.log10(2) * np.sqrt(64)
    np.testing.assert_allclose(b["mfcc_mean_00"] - a["mfcc_mean_00"], step, atol=0.01)
    for k in range(1, 13):
        np.testing.assert_allclose(b[f"mfcc_mean_{k:02d}"], a[f"mfcc_mean_{k:02d}"], atol=0.01)
        np.testing.assert_allclose(b[f"mfcc_std_{k:02d}"], a[f"mfcc_std_{k:02d}"], atol=0.01)


@pytest.mark.parametrize(("freq", "pc"), [(440.0, "a"), (261.63, "c"), (392.0, "g")])
def test_chroma_peaks_at_the_pitch_class(
    extract: BarFeatureExtractor, freq: float, pc: str
) -> None:
    out = extract(sine(freq, 2.0, 0.5), SR, HOP, bars_of(1.0, 2))
    chroma = np.vstack([out[f"chroma_{p}"] for p in PITCH_CLASSES])  # (12, bars)
    assert (np.argmax(chroma, axis=0) == PITCH_CLASSES.index(pc)).all()
    np.testing.assert_allclose(out[f"chroma_{pc}"], 1.0, atol=1e-3)  # normalized per frame


def test_chroma_a_of_a440(silence_then_sine: dict[str, np.ndarray]) -> None:
    out = silence_then_sine
    others = [out[f"chroma_{p}"][1] for p in PITCH_CLASSES if p != "a"]
    assert out["chroma_a"][1] == pytest.approx(1.0, abs=1e-3)
    assert max(others) < 0.5


def test_onset_count_of_clicks(extract: BarFeatureExtractor) -> None:
    y = np.zeros(6 * SR)
    clicks = [2.25, 2.75, 3.25, 3.75]  # four clicks in bar 2 of three 2-second bars
    for t in clicks:
        y[round(t * SR)] = 1.0
    out = extract(y, SR, HOP, bars_of(2.0, 3))
    np.testing.assert_array_equal(out["onset_count"], [0, len(clicks), 0])


def test_onset_count_of_bursts(extract: BarFeatureExtractor) -> None:
    rng = np.random.default_rng(5)
    y = np.zeros(4 * SR)
    burst = np.exp(-np.arange(400) / 60.0)
    times = [0.3, 0.8, 1.3, 2.15, 2.4, 2.65, 2.9, 3.15, 3.4, 3.65]  # 3 in bar 1, 7 in bar 2
    for t in times:
        i = round(t * SR)
        y[i : i + burst.size] += burst * rng.standard_normal(burst.size) * 0.5
    out = extract(y, SR, HOP, bars_of(2.0, 2))
    np.testing.assert_array_equal(out["onset_count"], [3, 7])


def test_time_domain_is_exact_over_bar_samples(extract: BarFeatureExtractor) -> None:
    rng = np.random.default_rng(6)
    beats = np.sort(rng.uniform(0.1, 4.9, 20))
    grid = BeatGrid(beats, np.arange(1, 20, 3), 5.0, TimeSignature(3, 4))
    y = (rng.standard_normal(5 * SR) * np.linspace(0.01, 0.5, 5 * SR)).astype(np.float32)
    out = extract(y, SR, HOP, grid)
    cuts = [*np.rint(grid.bar_starts * SR).astype(int), y.size]
    for b, (s, e) in enumerate(itertools.pairwise(cuts)):
        seg = y[s:e].astype(np.float64)
        assert out["rms"][b] == pytest.approx(np.sqrt(np.mean(seg**2)), rel=1e-5)
        changes = np.count_nonzero(np.signbit(seg[1:]) != np.signbit(seg[:-1]))
        assert out["zcr"][b] == pytest.approx(changes / (seg.size - 1), rel=1e-5)


def test_bar_shorter_than_one_hop(extract: BarFeatureExtractor) -> None:
    rng = np.random.default_rng(8)
    y = (rng.standard_normal(2 * SR) * 0.1).astype(np.float32)
    short = 100 / SR  # a 100-sample bar between two 1-second-ish bars
    beats = np.array([0.0, 0.5, 1.0, 1.0 + short, 1.3, 1.6])
    grid = BeatGrid(beats, np.array([0, 2, 3]), 2.0, TimeSignature(2, 4))
    out = extract(y, SR, HOP, grid)
    assert all(col.shape == (3,) for col in out.values())
    s, e = round(1.0 * SR), round(1.0 * SR) + 100
    assert out["rms"][1] == pytest.approx(np.sqrt(np.mean(y[s:e].astype(np.float64) ** 2)), 1e-5)
    for name, col in out.items():
        assert np.all(np.isfinite(col)), name
    # White noise everywhere: the short bar's one frame looks like its neighbours.
    assert out["spectral_centroid_hz"][1] == pytest.approx(out["spectral_centroid_hz"][0], rel=0.2)


def test_empty_last_bar_from_rounding(extract: BarFeatureExtractor) -> None:
    """A downbeat within half a sample of the end opens an empty bar; it must not crash."""
    y = (np.random.default_rng(9).standard_normal(SR) * 0.1).astype(np.float32)
    beats = np.array([0.0, 0.5, (SR - 0.3) / SR])
    grid = BeatGrid(beats, np.array([0, 2]), 1.0, TimeSignature(2, 4))
    out = extract(y, SR, HOP, grid)
    assert all(col.shape == (2,) for col in out.values())
    assert out["rms"][1] == 0.0 and out["zcr"][1] == 0.0
    assert out["loudness_dbfs"][1] == -120.0
    assert out["rms"][0] == pytest.approx(np.sqrt(np.mean(y.astype(np.float64) ** 2)), rel=1e-5)
