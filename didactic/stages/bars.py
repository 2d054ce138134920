"""Bars from beats: downbeat evidence, the meter, and a bar phase that follows the evidence.

Bars are where harmony changes and the bass hits. Each beat gets a downbeat score from the
chroma change into it and the rise of bass power at it. The meter (``time_signature=auto``)
is the bar length whose "change every n beats" pattern the harmony follows, with two against
four settled by the bass root at the half-bar, and compound (6/8, 9/8, 12/8) when beats split
in three. Downbeats are then decoded with a Viterbi pass over positions in the bar, so a beat
the tracker missed or doubled costs one re-anchoring instead of shifting every later bar.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import librosa
import numpy as np

from didactic.config import TimeSignature

log = logging.getLogger(__name__)

# Bar lengths (in counted beats) that time_signature=auto chooses from.
AUTO_BEATS_PER_BAR = (2, 3, 4)
# Cost, in standardized downbeat-score units, of a bar that is one beat longer or shorter than
# the meter says. A phase change must be supported by about this much evidence (two or three
# bars of clear downbeats), so noise does not re-anchor bars but a doubled beat does.
DEFAULT_REANCHOR_COST = 4.0


@dataclass(frozen=True)
class MeterEstimate:
    """The meter chosen from the audio and how clearly the evidence chose it (0 to 1)."""

    meter: TimeSignature
    confidence: float


@dataclass(frozen=True)
class DownbeatEvidence:
    """Per-beat evidence of a bar starting there, each standardized over the song.

    ``change`` is the chroma change into the beat (beat-synchronous chroma, cosine distance to
    the beat before); ``accent`` the rise of low-frequency (< 150 Hz) power at it. Beat 0 has no
    beat before it to change from, so it is NaN (no evidence either way) in both.
    ``change2`` (not standardized) is the cosine distance between the bass-register chroma of
    the two beats from this one and of the two beats before it: the change of harmonic root at
    the scale of a half-bar; NaN where undefined.
    """

    change: np.ndarray
    accent: np.ndarray
    change2: np.ndarray

    @property
    def score(self) -> np.ndarray:
        """How much each beat sounds like a downbeat: harmonic change plus bass accent, equally
        weighted."""
        return _standard(_unit(self.change[1:]) + _unit(self.accent[1:]))


def downbeat_evidence(y: np.ndarray, sr: int, beats: np.ndarray) -> DownbeatEvidence:
    """Harmonic change and low-frequency accent at every beat of ``y``."""
    hop = 512
    S = np.abs(librosa.stft(y, n_fft=2048, hop_length=hop)) ** 2
    frames = np.clip(librosa.time_to_frames(beats, sr=sr, hop_length=hop), 0, S.shape[1] - 1)
    chroma = librosa.feature.chroma_stft(S=S, sr=sr, tuning=0.0)
    # Mean chroma from each beat to the next (the last beat: one median interval on).
    step = int(np.median(np.diff(frames))) if frames.size > 1 else 1
    ends = np.append(frames[1:], frames[-1] + step)
    ends = np.clip(np.maximum(ends, frames + 1), 1, chroma.shape[1])
    cs = np.concatenate([np.zeros((chroma.shape[0], 1)), np.cumsum(chroma, axis=1)], axis=1)
    sync = (cs[:, ends] - cs[:, frames]) / np.maximum(ends - frames, 1)
    norm = np.linalg.norm(sync, axis=0) + 1e-9
    cos = np.sum(sync[:, 1:] * sync[:, :-1], axis=0) / (norm[1:] * norm[:-1])
    freqs = librosa.fft_frequencies(sr=sr, n_fft=2048)
    # The accent is the rise in low-band power, not in its dB: a dB flux measures how quiet it
    # was before the hit more than how hard the hit is (a kick after a rest outscores a louder
    # one under a sustained bass). Log-compressed, relative to the song's mean low-band power.
    power = S[freqs < 150].sum(axis=0)
    rise = np.maximum(np.diff(power, prepend=power[:1]), 0.0)
    accent = np.log1p(peak_near(rise, frames) / (power.mean() + 1e-12))
    # Half-bar harmony from the bass register: the root a bar stands on, without the melody
    # and chord voicings that move inside a bar (the full band when there is no bass).
    bass = freqs < BASS_HZ
    if S[bass].sum() >= 0.01 * S.sum():
        chroma = librosa.feature.chroma_stft(S=S * bass[:, None], sr=sr, tuning=0.0)
        cs = np.concatenate([np.zeros((chroma.shape[0], 1)), np.cumsum(chroma, axis=1)], axis=1)
    two = cs[:, frames[2:]] - cs[:, frames[:-2]]  # chroma of beats i and i+1 together
    two /= np.linalg.norm(two, axis=0) + 1e-9
    change2 = np.full(beats.size, np.nan)
    change2[2 : two.shape[1]] = 1.0 - np.sum(two[:, 2:] * two[:, :-2], axis=0)
    return DownbeatEvidence(_standard(1.0 - cos), _standard(accent[1:]), change2)


def peak_near(x: np.ndarray, frames: np.ndarray, width: int = 2) -> np.ndarray:
    """The largest value of ``x`` within ``width`` frames of each of ``frames`` (clipped to
    ``x``): an onset's peak near a beat that may be a frame or two off."""
    near = np.clip(frames[:, None] + np.arange(-width, width + 1)[None, :], 0, x.size - 1)
    return x[near].max(axis=1)


def _standard(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit spread, with a NaN for beat 0 prepended."""
    sd = x.std() if x.size else 0.0
    z = (x - x.mean()) / sd if sd > 1e-9 else np.zeros_like(x)
    return np.concatenate([[np.nan], z])


def _unit(x: np.ndarray) -> np.ndarray:
    if not x.size:
        return x
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def estimate_meter(
    evidence: DownbeatEvidence, oenv: np.ndarray, beat_frames: np.ndarray
) -> MeterEstimate:
    """Choose beats per bar from the harmonic rhythm and simple/compound from the subdivision.

    For each bar length ``n`` in :data:`AUTO_BEATS_PER_BAR`, the chroma change is correlated
    with the best-phased pattern "a change every ``n`` beats"; a too-long bar halves the match
    and a too-short one puts unchanged beats on the pattern, so the right length correlates
    best. Two against four is then settled by the half-bar change (:func:`_two_or_four`),
    which the correlation alone often gets wrong. (The bass accent is left out here: a kick on
    beats 1 and 3 would vote for 2/4.) The
    beat is compound when onsets sit on both of its thirds more strongly than on its half; a
    swung off-beat fills only the second third, so swing stays simple. Confidence is the
    margin of each choice over its runner-up relative to the winner (the smaller of the two
    margins), 0 without evidence.
    """
    z = np.nan_to_num(evidence.change[1:], nan=0.0)  # beat 0 carries no evidence
    corr = {}
    for n in AUTO_BEATS_PER_BAR:
        if z.size < 2 * n or z.std() < 1e-9:
            corr[n] = 0.0
            continue
        best = -1.0
        for phase in range(n):
            ind = ((np.arange(1, z.size + 1) - phase) % n == 0).astype(np.float64)
            best = max(best, float(np.corrcoef(z, ind)[0, 1]))
        corr[n] = best
    ranked = sorted(corr, key=lambda n: corr[n], reverse=True)
    n = ranked[0]
    bar_conf = (corr[n] - max(corr[ranked[1]], 0.0)) / corr[n] if corr[n] > 0 else 0.0
    if corr[n] <= 0:
        n = 4  # no bar evidence at all: the common meter, with zero confidence
    elif n in (2, 4):
        n, bar_conf = _two_or_four(evidence)
    thirds, half, on = _subdivision_strength(oenv, beat_frames)
    # Both thirds must carry real onsets (a tenth of the beats' strength): with neither
    # subdivision played, noise would otherwise decide.
    compound = thirds > half and thirds > 0.1 * on
    sub_conf = abs(thirds - half) / (thirds + half) if thirds + half > 0 else 0.0
    # Compound meters count beats of three eighths: 6/8, 9/8, 12/8.
    meter = TimeSignature(3 * n, 8) if compound else TimeSignature(n, 4)
    conf = float(np.clip(min(bar_conf, 1.0 if not compound else 2 * sub_conf), 0.0, 1.0))
    log.debug("meter %s (bar correlations %s, thirds %.3f half %.3f)", meter, corr, thirds, half)
    return MeterEstimate(meter, conf)


# Half-bar change of the bass root over its change at the bar line, on 24 rendered songs:
# 0.84-1.65 in 2/4 and 6/8 (the "middle" of a four-beat reading is a bar line), 0.00-0.08 in
# 4/4 and 12/8. (With full-band chroma the two overlapped: the melody moves inside a bar.)
HALF_BAR_RATIO = 0.5
BASS_HZ = 300.0


def _two_or_four(evidence: DownbeatEvidence) -> tuple[int, float]:
    """Two or four beats a bar, and how clearly: read the song in four-beat bars and compare
    the change of the bass root at their middle (the third beat) with that at their bar lines.
    In a real four-beat bar the middle stands on the same root; when the root changes there
    about as much as at the bar line, the middle is a bar line too."""
    z = np.nan_to_num(evidence.change, nan=0.0)
    folds = [z[k::4][1 if k == 0 else 0 :].mean() if z[k::4].size else 0.0 for k in range(4)]
    phase = int(np.argmax(folds))
    c2 = evidence.change2
    line = np.nanmean(c2[phase::4]) if np.isfinite(c2[phase::4]).any() else np.nan
    mid = c2[(phase + 2) % 4 :: 4]
    mid_mean = np.nanmean(mid) if np.isfinite(mid).any() else np.nan
    if not (np.isfinite(line) and np.isfinite(mid_mean)) or line <= 0:
        return 4, 0.0
    ratio = float(mid_mean / line)
    n = 2 if ratio >= HALF_BAR_RATIO else 4
    log.debug("half-bar change ratio %.2f: %d beats a bar", ratio, n)
    return n, float(min(1.0, abs(ratio - HALF_BAR_RATIO) / HALF_BAR_RATIO))


def _subdivision_strength(oenv: np.ndarray, beat_frames: np.ndarray) -> tuple[float, float, float]:
    """Onset strength at the weaker of the beats' thirds, at their halves and on the beats
    (median over the beats of the peak within +-2 frames)."""
    if beat_frames.size < 3:
        return 0.0, 0.0, 0.0
    start = beat_frames[:-1].astype(np.float64)
    ibi = np.diff(beat_frames).astype(np.float64)

    def at(fraction: float) -> float:
        centre = np.rint(start + fraction * ibi).astype(np.int64)
        return float(np.median(peak_near(oenv, centre)))

    return min(at(1 / 3), at(2 / 3)), at(0.5), at(0.0)


def decode_downbeats(
    scores: np.ndarray, beats_per_bar: int, reanchor_cost: float = DEFAULT_REANCHOR_COST
) -> np.ndarray:
    """Indices of the downbeats: the bar-position path that best matches the scores.

    States are positions in the bar (0 = downbeat). Each beat advances the position by one;
    staying (a doubled beat) or skipping ahead (a missed beat) costs ``reanchor_cost``. A
    downbeat at beat ``i`` earns ``scores[i]``. Ties go to the path with the first beat as a
    downbeat, so a song without evidence keeps its first beat as bar 1.
    """
    n = int(beats_per_bar)
    z = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
    if n < 2 or z.size == 0:
        return np.arange(0, z.size, max(n, 1))
    pos = np.arange(n)
    # trans[p, q]: gain of going from position p to q.
    trans = np.where(pos[None, :] == (pos[:, None] + 1) % n, 0.0, -reanchor_cost)
    # A tiny preference for starting on a downbeat breaks ties between equal phases.
    value = np.where(pos == 0, 1e-6, 0.0) + np.where(pos == 0, z[0], 0.0)
    back = np.zeros((z.size, n), dtype=np.int64)
    for i in range(1, z.size):
        cand = value[:, None] + trans  # from p (rows) to q (columns)
        back[i] = np.argmax(cand, axis=0)
        value = cand[back[i], pos] + np.where(pos == 0, z[i], 0.0)
    state = np.empty(z.size, dtype=np.int64)
    state[-1] = int(np.argmax(value))
    for i in range(z.size - 1, 0, -1):
        state[i - 1] = back[i, state[i]]
    return np.flatnonzero(state == 0)
