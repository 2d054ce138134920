"""Per-bar audio features of one stem: one STFT, aggregated per bar without a loop over bars.

Definitions (one place; the README's table is generated from :data:`FEATURES`):

- Time-domain features (``rms``, ``loudness_dbfs``, ``zcr``) are exact over the bar's samples.
- Frame features come from one magnitude STFT (``n_fft``, ``hop_length``, Hann, centred) and are
  averaged over the frames whose centre lies in the bar; a bar shorter than a hop uses the frame
  nearest its middle.
- Spectral-shape features (centroid, bandwidth, rolloff, flatness, contrast) are undefined on
  silence (librosa would report flatness 1 there), so they average only frames louder than
  :data:`SILENCE_DBFS` and are NaN for a bar without one, or whose own samples are that quiet
  (a frame centred in a silent bar can still see a neighbouring bar through its window).
- MFCCs use a log-mel spectrogram in absolute dB (``ref=1``, no ``top_db``), so values do not
  depend on the loudest moment of the song.
"""

from __future__ import annotations

import librosa
import numpy as np

from didactic.grid import BeatGrid

SILENCE_DBFS = -80.0
LOUDNESS_FLOOR_DBFS = -120.0
PITCH_CLASSES = ("c", "cs", "d", "ds", "e", "f", "fs", "g", "gs", "a", "as", "b")

# name -> definition. Columns with a number suffix are expanded in feature_columns().
FEATURES: dict[str, str] = {
    "rms": "root mean square of the bar's samples (full-scale square wave = 1)",
    "loudness_dbfs": "20*log10(rms), floored at -120 dB (a full-scale sine reads -3.01)",
    "zcr": "sign changes per sample over the bar",
    "spectral_centroid_hz": "mean spectral centroid of non-silent frames",
    "spectral_bandwidth_hz": "mean 2nd-order spectral bandwidth of non-silent frames",
    "spectral_rolloff_hz": "mean frequency below which rolloff_percent of energy lies",
    "spectral_flatness": "mean Wiener entropy (0 tonal .. 1 noise) of non-silent frames",
    "spectral_contrast_{k}": "mean peak-valley contrast (dB) of octave band k, non-silent frames",
    "mfcc_mean_{k}": "mean of MFCC k (k=0 is the log-energy term)",
    "mfcc_std_{k}": "standard deviation of MFCC k over the bar's frames",
    "chroma_{pc}": "mean normalized chroma energy of pitch class pc (c, cs, ... b)",
    "onset_count": "number of onsets (onset-envelope peaks, envelope normalized per stem)",
}


def feature_columns(n_mfcc: int = 13, contrast_bands: int = 6) -> list[str]:
    """Feature column names in table order."""
    cols = ["rms", "loudness_dbfs", "zcr", "spectral_centroid_hz", "spectral_bandwidth_hz"]
    cols += ["spectral_rolloff_hz", "spectral_flatness"]
    cols += [f"spectral_contrast_{k}" for k in range(contrast_bands + 1)]
    cols += [f"mfcc_mean_{k:02d}" for k in range(n_mfcc)]
    cols += [f"mfcc_std_{k:02d}" for k in range(n_mfcc)]
    cols += [f"chroma_{pc}" for pc in PITCH_CLASSES]
    return [*cols, "onset_count"]


class BarFeatureExtractor:
    """Compute :func:`feature_columns` for every bar of a grid from a mono signal."""

    def __init__(
        self,
        n_fft: int = 2048,
        n_mels: int = 64,
        n_mfcc: int = 13,
        rolloff_percent: float = 0.85,
        contrast_bands: int = 6,
        contrast_fmin: float = 200.0,
    ) -> None:
        self.n_fft = n_fft
        self.n_mels = n_mels
        self.n_mfcc = n_mfcc
        self.rolloff_percent = rolloff_percent
        self.contrast_bands = contrast_bands
        self.contrast_fmin = contrast_fmin

    @property
    def columns(self) -> list[str]:
        return feature_columns(self.n_mfcc, self.contrast_bands)

    def __call__(
        self, y: np.ndarray, sr: int, hop_length: int, grid: BeatGrid
    ) -> dict[str, np.ndarray]:
        y = np.asarray(y, dtype=np.float32)
        starts = np.rint(grid.bar_starts * sr).astype(np.int64).clip(0, y.size)
        ends = np.concatenate([starts[1:], [y.size]])
        out: dict[str, np.ndarray] = {}
        out.update(_time_domain(y, starts, ends))

        S = np.abs(librosa.stft(y, n_fft=self.n_fft, hop_length=hop_length, center=True))
        P = S**2
        f0, f1 = _frame_ranges(starts, ends, hop_length, S.shape[1])
        frame_rms = librosa.feature.rms(S=S, frame_length=self.n_fft)[0]
        loud = (20 * np.log10(np.maximum(frame_rms, 1e-12)) > SILENCE_DBFS).astype(np.float64)

        shape = np.vstack(
            [
                librosa.feature.spectral_centroid(S=S, sr=sr, n_fft=self.n_fft),
                librosa.feature.spectral_bandwidth(S=S, sr=sr, n_fft=self.n_fft),
                librosa.feature.spectral_rolloff(
                    S=S, sr=sr, n_fft=self.n_fft, roll_percent=self.rolloff_percent
                ),
                librosa.feature.spectral_flatness(S=S),
                librosa.feature.spectral_contrast(
                    S=S,
                    sr=sr,
                    n_fft=self.n_fft,
                    n_bands=self.contrast_bands,
                    fmin=self.contrast_fmin,
                ),
            ]
        )
        shape_means = _weighted_means(shape, loud, f0, f1)
        # A frame centred in a silent bar still sees the next bar's attack through its
        # window; a bar whose own samples are silent has no spectral shape.
        silent_bar = 20 * np.log10(np.maximum(out["rms"], 1e-12)) <= SILENCE_DBFS
        shape_means[:, silent_bar] = np.nan
        names = ["spectral_centroid_hz", "spectral_bandwidth_hz", "spectral_rolloff_hz"]
        names += ["spectral_flatness"]
        names += [f"spectral_contrast_{k}" for k in range(self.contrast_bands + 1)]
        out.update(zip(names, shape_means, strict=True))

        mel = librosa.feature.melspectrogram(S=P, sr=sr, n_fft=self.n_fft, n_mels=self.n_mels)
        logmel = librosa.power_to_db(mel, ref=1.0, top_db=None)
        mfcc = librosa.feature.mfcc(S=logmel, n_mfcc=self.n_mfcc)
        ones = np.ones(S.shape[1])
        mean = _weighted_means(mfcc, ones, f0, f1)
        sq = _weighted_means(mfcc.astype(np.float64) ** 2, ones, f0, f1)
        std = np.sqrt(np.maximum(sq - mean**2, 0.0))
        for k in range(self.n_mfcc):
            out[f"mfcc_mean_{k:02d}"] = mean[k]
            out[f"mfcc_std_{k:02d}"] = std[k]

        chroma = librosa.feature.chroma_stft(
            S=P, sr=sr, n_fft=self.n_fft, hop_length=hop_length, tuning=0.0
        )
        for pc, row in zip(PITCH_CLASSES, _weighted_means(chroma, ones, f0, f1), strict=True):
            out[f"chroma_{pc}"] = row

        oenv = librosa.onset.onset_strength(S=logmel, sr=sr, hop_length=hop_length)
        onset_frames = librosa.onset.onset_detect(
            onset_envelope=oenv, sr=sr, hop_length=hop_length, units="frames"
        )
        rows = np.searchsorted(starts, onset_frames * hop_length, side="right") - 1
        out["onset_count"] = np.bincount(rows, minlength=starts.size).astype(np.int32)

        return {  # in table order (feature_columns)
            k: (out[k] if k == "onset_count" else out[k].astype(np.float32)) for k in self.columns
        }


def _time_domain(y: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> dict[str, np.ndarray]:
    """Exact per-bar RMS, loudness and zero-crossing rate from cumulative sums."""
    # Per-bar sums with reduceat, not differences of one running sum: after a loud passage the
    # running sum's rounding step exceeds a quiet bar's whole energy. The appended zero makes
    # every start (up to y.size) a valid index; reduceat gives x[i] for an empty segment.
    sq = np.concatenate([y.astype(np.float64) ** 2, [0.0]])
    energy = np.where(ends > starts, np.add.reduceat(sq, starts), 0.0)
    n = np.maximum(ends - starts, 1)
    rms = np.sqrt(energy / n)
    signs = np.signbit(y)
    crossings = np.concatenate([[0], np.cumsum(signs[1:] != signs[:-1])])
    # crossings[i] counts sign changes between samples 0..i; a bar's own changes lie between
    # its first and last sample.
    # An empty bar at the very end can start at y.size: clip into the array (its zcr is 0).
    top = crossings.size - 1
    first = np.clip(starts, 0, top)
    last = np.clip(np.maximum(ends - 1, starts), 0, top)
    zcr = (crossings[last] - crossings[first]) / np.maximum(ends - starts - 1, 1)
    loud = 20 * np.log10(np.maximum(rms, 10 ** (LOUDNESS_FLOOR_DBFS / 20)))
    return {"rms": rms, "loudness_dbfs": loud, "zcr": zcr}


def _frame_ranges(
    starts: np.ndarray, ends: np.ndarray, hop: int, n_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Frames whose centre (``t * hop``) lies in each bar; at least one frame per bar."""
    f0 = np.minimum(-(-starts // hop), n_frames)
    f1 = np.minimum(-(-ends // hop), n_frames)
    short = f1 <= f0
    mid = np.clip(np.rint((starts + ends) / 2 / hop).astype(np.int64), 0, n_frames - 1)
    return np.where(short, mid, f0), np.where(short, mid + 1, f1)


def _weighted_means(x: np.ndarray, w: np.ndarray, f0: np.ndarray, f1: np.ndarray) -> np.ndarray:
    """Per-bar means of each row of ``x`` (features, frames) over frames ``[f0, f1)`` weighted
    by ``w``; NaN where a bar's weights sum to zero."""
    x = np.asarray(x, dtype=np.float64)
    cs = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x * w, axis=1)], axis=1)
    cw = np.concatenate([[0.0], np.cumsum(w)])
    total = cw[f1] - cw[f0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (cs[:, f1] - cs[:, f0]) / total, np.nan)
