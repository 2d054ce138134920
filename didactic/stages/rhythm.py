"""Tempo and beats: librosa's dynamic-programming tracker, made robust at the edges.

librosa's beats land a few tens of milliseconds after the audible onsets and often miss the
first beats of a song or of a quiet intro. This stage therefore (1) snaps every tracked beat to
the nearest detected onset within ``snap_window_s``, (2) recovers beats before the first and after
the last tracked one while onsets keep confirming the period, and (3) fills single dropped beats.
Bars, and with ``time_signature=auto`` the meter, come from :mod:`didactic.stages.bars`.
"""

from __future__ import annotations

import logging

import librosa
import numpy as np

from didactic.config import TimeSignature
from didactic.errors import StageError
from didactic.grid import BeatGrid
from didactic.stages.bars import (
    DEFAULT_REANCHOR_COST,
    decode_downbeats,
    downbeat_evidence,
    estimate_meter,
    peak_near,
)

log = logging.getLogger(__name__)

# How much later than the note-on the onset envelope's peak lies with the settings below
# (measured on rendered songs: a median of 8 ms with a spread of about +-5 ms). Removing it puts
# bar boundaries just before the attack rather than inside it, so a bar's chunk starts with its
# downbeat's whole transient.
ONSET_LATENCY_S = 0.008


class BeatTracker:
    """Find the beat grid of a mono signal.

    Parameters
    ----------
    start_bpm
        Centre of the tempo prior; steers half/double-tempo choices.
    bpm_range
        ``[low, high]``: tempi outside it are never chosen (a hard version of the prior).
    tightness
        How strictly the tracker keeps to one tempo.
    snap_window_s
        Largest distance over which a beat is moved onto a detected onset.
    reanchor_cost
        Evidence needed to start a bar one beat early or late (see
        :func:`~didactic.stages.bars.decode_downbeats`); higher keeps bars strictly regular.
    """

    def __init__(
        self,
        start_bpm: float = 120.0,
        bpm_range: tuple[float, float] | list[float] = (30.0, 320.0),
        tightness: float = 100.0,
        snap_window_s: float = 0.07,
        reanchor_cost: float = DEFAULT_REANCHOR_COST,
    ) -> None:
        self.start_bpm = start_bpm
        self.bpm_range = (float(bpm_range[0]), float(bpm_range[1]))
        self.tightness = tightness
        self.snap_window_s = snap_window_s
        self.reanchor_cost = reanchor_cost

    def __call__(
        self, y: np.ndarray, sr: int, hop_length: int, meter: TimeSignature | None
    ) -> BeatGrid:
        """The grid of ``y``; ``meter`` None estimates the meter from the audio."""
        duration = y.shape[-1] / sr
        # Onsets are located on a finer hop than the feature frames: librosa's onset envelope
        # lags the attack by about one hop, which at 512 samples is already 23 ms.
        hop = onset_hop(sr)
        # Leading zeros let an attack at 0 s rise out of silence like any other onset.
        pad = 8 * hop
        y = np.concatenate([np.zeros(pad, dtype=y.dtype), y])
        oenv, low = _onset_envelopes(y, sr, hop)
        if not np.any(oenv > 0):
            raise StageError("rhythm", "no detectable beat (no onsets: silent or steady signal)")
        bpm = global_tempo(low, sr, hop, self.start_bpm, self.bpm_range)
        frames = self._track(oenv, low, sr, hop, bpm)
        if offbeats_as_strong(low, frames) and 2 * bpm <= min(self.bpm_range[1], MAX_OCTAVE_UP_BPM):
            # The tracker locked onto every other beat: the "off-beats" between its beats are as
            # strong as its beats (a backbeat snare between kicks), so the beat is twice as fast.
            log.debug("tempo %.1f BPM has off-beats as strong as its beats: doubled", bpm)
            bpm *= 2
            frames = self._track(oenv, low, sr, hop, bpm)
        beats = librosa.frames_to_time(np.asarray(frames), sr=sr, hop_length=hop) - pad / sr
        if beats.size < 2:
            raise StageError("rhythm", f"no detectable beat ({beats.size} beats found)")
        onsets = _onset_times(oenv, sr, hop) - pad / sr - ONSET_LATENCY_S
        beats = _snap(beats, onsets, self.snap_window_s)
        beats = _fill_gaps(beats)
        beats = _extend(beats, onsets, _sounding_until(y[pad:], sr), self.snap_window_s)
        beats = np.unique(np.clip(beats, 0.0, None))
        beats = beats[beats < duration]
        if beats.size < 2:
            raise StageError("rhythm", f"no detectable beat ({beats.size} beats found)")
        evidence = downbeat_evidence(y[pad:], sr, beats)
        confidence = float("nan")
        if meter is None:
            frames = np.rint((beats + ONSET_LATENCY_S) * sr / hop).astype(np.int64) + pad // hop
            est = estimate_meter(evidence, oenv, frames)
            meter, confidence = est.meter, est.confidence
        downbeats = decode_downbeats(evidence.score, meter.beats_per_bar, self.reanchor_cost)
        grid = BeatGrid(beats, downbeats, duration, meter, confidence)
        log.debug(
            "tempo %.2f BPM, %d beats, %d bars in %s",
            grid.tempo_bpm,
            grid.n_beats,
            grid.n_bars,
            meter,
        )
        return grid

    def _track(
        self, oenv: np.ndarray, low: np.ndarray, sr: int, hop: int, bpm: float
    ) -> np.ndarray:
        """Beat frames from librosa's tracker on ``oenv``, following the local tempo around
        ``bpm`` that the low-band envelope ``low`` shows."""
        curve = tempo_curve(low, sr, hop, bpm)
        _, frames = librosa.beat.beat_track(
            onset_envelope=oenv, sr=sr, hop_length=hop, bpm=curve, tightness=self.tightness
        )
        return np.asarray(frames)


# A tempo with strong off-beats is doubled only up to this (a 110 BPM reading never becomes
# 220); below it, rhythm.bpm_range is how a user keeps a half-time reading.
MAX_OCTAVE_UP_BPM = 200.0
# Local tempi are looked for within this factor of the global tempo: wide enough for two 25 %
# ritardandi or steps, narrow enough that a window never flips to double or half tempo.
LOCAL_TEMPO_SPAN = 1.5
LOCAL_WINDOW_S = 6.0
# Below 2 kHz a window at the right tempo repeats at half its beat lag with under half the
# strength (there is no eighth-note kick or snare); at half tempo, at about 70 %.
HALF_LAG_RATIO = 0.5
# Below 2 kHz, off-beats reach 5-16 % of the beats' onset strength at the right tempo and
# 59-110 % at half tempo on rendered songs (60-180 BPM, all meters, swing): the split.
OFFBEAT_RATIO = 0.35


def tempo_curve(oenv: np.ndarray, sr: int, hop: int, bpm: float) -> np.ndarray:
    """The tempo at every onset-envelope frame: windowed autocorrelation peaks near ``bpm``.

    Each window of :data:`LOCAL_WINDOW_S` seconds (hop 1 s) picks the lag within
    :data:`LOCAL_TEMPO_SPAN` of the global period that repeats its onsets best, refined by a
    parabola; a running median over three windows removes single outliers. A song shorter than
    two windows, or a window without onsets, keeps the global tempo.
    """
    fps = sr / hop
    win, step = int(LOCAL_WINDOW_S * fps), int(fps)
    n = oenv.size
    if n < 2 * win:
        return np.full(n, bpm)
    period = 60.0 * fps / bpm
    lo, hi = int(np.floor(period / LOCAL_TEMPO_SPAN)), int(np.ceil(period * LOCAL_TEMPO_SPAN))
    lags = np.arange(max(lo, 1), hi + 1)
    # Prefer the global period a little (a 0.5-octave log-normal), so weak windows
    # stay on it and only clear evidence moves the local tempo.
    prior = np.exp(-0.5 * (np.log2(lags / period) / 0.5) ** 2)
    centres, local = [], []
    for start in range(0, n - win + 1, step):
        x = oenv[start : start + win].astype(np.float64)
        x = x - x.mean()
        ac = librosa.autocorrelate(x, max_size=hi + 2)
        if ac[0] <= 0:
            continue
        score = np.maximum(ac[lags], 0) * prior
        k = int(np.argmax(score))
        # A window that repeats as well at half the lag is on the beat's second level (a
        # kick-snare pair); take the beat itself when a tempo change puts it in range.
        half = int(np.argmin(np.abs(lags - lags[k] / 2)))
        if abs(lags[half] - lags[k] / 2) <= 1 and ac[lags[half]] >= HALF_LAG_RATIO * ac[lags[k]]:
            k = half
        lag = float(lags[k])
        if 0 < k < lags.size - 1:
            a, b, c = score[k - 1], score[k], score[k + 1]
            denom = a - 2 * b + c
            lag += 0.5 * (a - c) / denom if denom else 0.0
        centres.append(start + win / 2)
        local.append(60.0 * fps / lag)
    if len(local) < 3:
        return np.full(n, bpm)
    local_arr = np.asarray(local)
    smooth = np.array([np.median(local_arr[max(0, i - 1) : i + 2]) for i in range(local_arr.size)])
    return np.interp(np.arange(n), centres, smooth)


def _onset_envelopes(y: np.ndarray, sr: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-band and below-2 kHz onset envelopes, from one STFT.

    Hi-hats make every subdivision an onset; below 2 kHz only kick, snare, bass and chords
    count, which is what tells the beat from its subdivisions (and a backbeat from an
    off-beat). The full-band envelope then places the beats precisely.
    """
    n_fft = 8 * hop
    power = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop)) ** 2

    def envelope(fmax: float | None) -> np.ndarray:
        mel = librosa.feature.melspectrogram(S=power, sr=sr, fmax=fmax)
        return librosa.onset.onset_strength(
            S=librosa.power_to_db(mel), sr=sr, hop_length=hop, n_fft=n_fft
        )

    return envelope(None), envelope(2000.0)


def offbeats_as_strong(oenv: np.ndarray, frames: np.ndarray) -> bool:
    """Whether the onsets halfway between tracked beats are nearly as strong as the beats."""
    if frames.size < 4:
        return False
    mid = (frames[:-1] + frames[1:]) // 2
    on = peak_near(oenv, frames[:-1])
    off = peak_near(oenv, mid)
    return bool(np.median(off) >= OFFBEAT_RATIO * np.median(on))


def _sounding_until(y: np.ndarray, sr: int, floor_db: float = -50.0) -> float:
    """End of the last 50 ms frame louder than ``floor_db`` below the song's loudest frame: the
    grid continues through a fade or a held chord, not through trailing silence."""
    frame = max(1, int(0.05 * sr))
    n = y.size // frame
    if n == 0:
        return y.size / sr
    rms = np.sqrt(np.mean(y[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10 ** (floor_db / 20))
    return (loud[-1] + 1) * frame / sr if loud.size else y.size / sr


def global_tempo(
    oenv: np.ndarray,
    sr: int,
    hop: int,
    start_bpm: float,
    bpm_range: tuple[float, float] = (30.0, 320.0),
) -> float:
    """The tempo whose period best repeats the whole onset envelope, weighted by librosa's
    log-normal prior (one octave wide, centred on ``start_bpm``), within ``bpm_range``.

    One autocorrelation of the whole envelope replaces librosa's tempogram, whose per-frame
    autocorrelations cost seconds per minute of audio at a fine hop.
    """
    x = oenv.astype(np.float64) - oenv.mean()
    ac = librosa.autocorrelate(x)
    lags = np.arange(1, ac.size)
    bpm = 60.0 * sr / (hop * lags)
    prior = np.exp(-0.5 * (np.log2(bpm / start_bpm)) ** 2)
    lo, hi = bpm_range
    score = np.where((bpm >= lo) & (bpm <= hi), np.maximum(ac[1:], 0) * prior, 0.0)
    k = int(np.argmax(score))
    if 0 < k < score.size - 1:  # parabolic refinement of the peak lag
        a, b, c = score[k - 1], score[k], score[k + 1]
        denom = a - 2 * b + c
        lag = lags[k] + (0.5 * (a - c) / denom if denom else 0.0)
    else:
        lag = lags[k]
    return float(60.0 * sr / (hop * lag))


def onset_hop(sr: int) -> int:
    """The power of two nearest 5.8 ms at ``sr`` (128 samples at 22.05 kHz)."""
    return int(2 ** round(np.log2(sr * 0.0058)))


def _onset_times(oenv: np.ndarray, sr: int, hop_length: int) -> np.ndarray:
    """Onset times with sub-frame precision: the parabolic peak of the onset envelope, less
    half a frame for its backward difference (frame t measures the change from t-1 to t)."""
    peaks = librosa.onset.onset_detect(
        onset_envelope=oenv, sr=sr, hop_length=hop_length, backtrack=False, units="frames"
    )
    peaks = peaks[peaks < oenv.size - 1]
    if not peaks.size:
        return np.empty(0)
    inner = peaks > 0
    a = np.where(inner, oenv[np.maximum(peaks - 1, 0)], oenv[peaks])
    b, c = oenv[peaks], oenv[peaks + 1]
    denom = a - 2 * b + c
    offset = np.where(
        inner & (np.abs(denom) > 1e-12), 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0
    )
    frames = np.maximum(peaks + np.clip(offset, -0.5, 0.5) - 0.5, 0.0)
    return librosa.frames_to_time(frames, sr=sr, hop_length=hop_length)


def _snap(beats: np.ndarray, onsets: np.ndarray, window: float) -> np.ndarray:
    """Move each beat to the nearest onset within ``window`` seconds."""
    if not onsets.size or window <= 0:
        return beats
    idx = np.clip(np.searchsorted(onsets, beats), 1, onsets.size - 1) if onsets.size > 1 else None
    if idx is None:
        nearest = np.full(beats.shape, onsets[0])
    else:
        left, right = onsets[idx - 1], onsets[idx]
        nearest = np.where(np.abs(beats - left) <= np.abs(right - beats), left, right)
    out = np.where(np.abs(nearest - beats) <= window, nearest, beats)
    return np.unique(out)


def _fill_gaps(beats: np.ndarray) -> np.ndarray:
    """Insert evenly spaced beats into intervals that hold two or more median periods."""
    if beats.size < 3:
        return beats
    ibi = np.diff(beats)
    period = np.median(ibi)
    n = np.rint(ibi / period).astype(int)
    if np.all(n <= 1):
        return beats
    parts = [
        np.linspace(b, b + d, k, endpoint=False)
        for b, d, k in zip(beats[:-1], ibi, np.maximum(n, 1), strict=True)
    ]
    return np.concatenate([*parts, beats[-1:]])


# How far (as a share of the period) an onset may lie from the predicted beat in an intro the
# tracker skipped and still be taken as the beat at a changed tempo; off-beats lie at 50 %.
HEAD_TEMPO_SLACK = 0.25
# Beats before the tracked ones may be placed by the period alone through a quiet stretch of an
# intro, but not for more than this many in a row: a lead-in of noise does not become bars.
MAX_UNCONFIRMED_BEATS = 4


def _extend(beats: np.ndarray, onsets: np.ndarray, end: float, window: float) -> np.ndarray:
    """Recover beats the tracker trimmed at either end, one period at a time.

    Backwards, each beat lands on an onset within the tolerance if there is one (else where the
    period puts it) as long as the music has started (the first onset): an intro the tracker
    skipped still gets its bars, so bar numbers count from the true first bar. Forwards, the
    grid continues up to ``end`` (where the song stops sounding).
    """
    period = float(np.median(np.diff(beats[-4:]))) if beats.size > 2 else float(beats[1] - beats[0])
    head_period = float(np.median(np.diff(beats[:4])))  # near the start: tempo may change
    first = float(beats[1] - beats[0])
    if abs(first / head_period - 1.0) < 0.25:  # the interval nearest the head, unless an outlier
        head_period = first
    tol = max(window, 0.1 * head_period)
    start = float(onsets[0]) if onsets.size else float(beats[0])
    head: list[float] = []
    later = float(beats[0])
    t = later - head_period
    unconfirmed = 0  # beats in a row placed by the period alone
    while t > max(start, 0.0) - tol:
        confirmed = False
        if onsets.size:
            near = onsets[np.argmin(np.abs(onsets - t))]
            if abs(near - t) <= tol:
                t, confirmed = near, True
            elif abs(near - t) <= HEAD_TEMPO_SLACK * head_period and head:
                # The intro is at another tempo (a step the tracker never saw): follow the
                # onset and its interval, as long as the beats before confirmed the grid.
                head_period, t, confirmed = later - near, near, True
        unconfirmed = 0 if confirmed else unconfirmed + 1
        if unconfirmed > MAX_UNCONFIRMED_BEATS:  # noise before the music, not an intro
            del head[-MAX_UNCONFIRMED_BEATS:]
            break
        head.append(max(t, 0.0))
        later = t
        t -= head_period
    tail: list[float] = []
    t = beats[-1] + period
    while t < end - 0.5 * period:
        if onsets.size:
            near = onsets[np.argmin(np.abs(onsets - t))]
            t = near if abs(near - t) <= tol else t
        tail.append(t)
        t += period
    return np.concatenate([head[::-1], beats, tail])
