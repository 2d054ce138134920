"""The beat grid of a song and everything derived from it: bars, beat coordinates, indices.

Bar numbering follows music notation: bar 1 starts on the first downbeat; bar 0 holds whatever
comes before it (a pickup, leading silence) and exists only when that span is not empty. Bars
cover the song from 0 s to its end without gaps, so every sample and note is in exactly one bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from didactic.config import TimeSignature

# A first downbeat closer to 0 s than this (a sliver of silence before the first attack)
# does not open a bar 0 of its own; the sliver belongs to bar 1.
MIN_BAR0_S = 0.05


@dataclass(frozen=True, eq=False)
class BeatGrid:
    """Beats, downbeats and the meter of one song.

    Parameters
    ----------
    beat_times
        Seconds of every beat, strictly increasing.
    downbeats
        Indices into ``beat_times`` of the beats that start bars 1, 2, ...
    duration_s
        Length of the song; the last bar ends here.
    meter
        The time signature the bars were counted in.
    meter_confidence
        How clearly the audio chose ``meter`` (0 to 1); NaN when the meter was given.
    """

    beat_times: np.ndarray
    downbeats: np.ndarray
    duration_s: float
    meter: TimeSignature
    meter_confidence: float = float("nan")

    def __post_init__(self) -> None:
        bt = np.asarray(self.beat_times, dtype=np.float64)
        db = np.asarray(self.downbeats, dtype=np.int64)
        if not np.isfinite(self.duration_s):
            raise ValueError(f"duration must be finite, got {self.duration_s}")
        # Written as negated "good" conditions so that NaN beat times fail them too.
        if bt.size and not (np.all(np.diff(bt) > 0) and bt[0] >= 0 and bt[-1] < self.duration_s):
            raise ValueError("beat times must increase strictly within [0, duration)")
        if db.size and (np.any(np.diff(db) <= 0) or db[0] < 0 or db[-1] >= bt.size):
            raise ValueError("downbeats must be increasing indices into beat_times")
        object.__setattr__(self, "beat_times", bt)
        object.__setattr__(self, "downbeats", db)

    @property
    def n_beats(self) -> int:
        return int(self.beat_times.size)

    @cached_property
    def tempo_bpm(self) -> float:
        """Global tempo: 60 over the median inter-beat interval (robust to a few bad beats)."""
        if self.n_beats < 2:
            return float("nan")
        return float(60.0 / np.median(np.diff(self.beat_times)))

    @cached_property
    def local_tempo_bpm(self) -> np.ndarray:
        """Tempo at each beat, from the intervals on either side of it."""
        if self.n_beats < 2:
            return np.full(self.n_beats, np.nan)
        ibi = np.diff(self.beat_times)
        left = np.concatenate([ibi[:1], ibi])
        right = np.concatenate([ibi, ibi[-1:]])
        return 120.0 / (left + right)

    @cached_property
    def has_bar0(self) -> bool:
        first = self.beat_times[self.downbeats[0]] if self.downbeats.size else self.duration_s
        return bool(first > MIN_BAR0_S)

    @cached_property
    def bar_starts(self) -> np.ndarray:
        """Start time of every bar in the table, bar 0 first when it exists."""
        starts = self.beat_times[self.downbeats]
        if self.has_bar0:
            starts = np.concatenate([[0.0], starts])
        elif starts.size:
            starts = starts.copy()
            starts[0] = 0.0  # the sliver before a downbeat at ~0 s belongs to bar 1
        else:
            starts = np.array([0.0])
        return starts

    @cached_property
    def bar_ends(self) -> np.ndarray:
        return np.concatenate([self.bar_starts[1:], [self.duration_s]])

    @cached_property
    def bar_numbers(self) -> np.ndarray:
        """The bar index of each row of :attr:`bar_starts` (0, 1, 2, ... or 1, 2, ...)."""
        first = 0 if self.has_bar0 or not self.downbeats.size else 1
        return np.arange(first, first + self.bar_starts.size, dtype=np.int64)

    @property
    def n_bars(self) -> int:
        return int(self.bar_starts.size)

    def bar_of_time(self, t: np.ndarray | float) -> np.ndarray:
        """Bar index holding each time (vectorized). Times past the end fall in the last bar."""
        row = np.searchsorted(self.bar_starts, np.asarray(t, dtype=np.float64), side="right") - 1
        return self.bar_numbers[np.clip(row, 0, self.n_bars - 1)]

    @cached_property
    def beat_bar_index(self) -> np.ndarray:
        """Bar index of every beat."""
        return self.bar_of_time(self.beat_times)

    @cached_property
    def beat_in_bar(self) -> np.ndarray:
        """1-based position of every beat in its bar (1 = downbeat).

        Beats before the first downbeat (a pickup) count back from it, as in notation: two
        pickup beats in 4/4 are beats 3 and 4 of bar 0.
        """
        idx = np.arange(self.n_beats)
        if not self.downbeats.size:
            return idx % self.meter.beats_per_bar + 1
        bar_row = np.searchsorted(self.downbeats, idx, side="right") - 1
        first = self.downbeats[np.maximum(bar_row, 0)]
        pickup = (idx - self.downbeats[0]) % self.meter.beats_per_bar + 1
        return np.where(bar_row >= 0, idx - first + 1, pickup)

    @cached_property
    def bar_n_beats(self) -> np.ndarray:
        """Number of beats that fall in each bar."""
        rows = np.searchsorted(self.bar_starts, self.beat_times, side="right") - 1
        return np.bincount(rows, minlength=self.n_bars).astype(np.int64)

    @cached_property
    def bar_tempo_bpm(self) -> np.ndarray:
        """Each bar's tempo from the beat intervals that start in it; NaN where none does."""
        if self.n_beats < 2:
            return np.full(self.n_bars, np.nan)
        ibi = np.diff(self.beat_times)
        rows = np.searchsorted(self.bar_starts, self.beat_times[:-1], side="right") - 1
        total = np.bincount(rows, weights=ibi, minlength=self.n_bars)
        count = np.bincount(rows, minlength=self.n_bars)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, 60.0 * count / total, np.nan)

    def beat_position(self, t: np.ndarray | float) -> np.ndarray:
        """Fractional beat coordinate of each time: ``k`` at beat ``k``, linear in between.

        Outside the beats it continues at the first or last interval, so times before the first
        beat get negative coordinates (a coordinate, not an index).
        """
        t = np.asarray(t, dtype=np.float64)
        bt = self.beat_times
        if bt.size < 2:
            return np.full(t.shape, np.nan)
        pos = np.interp(t, bt, np.arange(bt.size, dtype=np.float64))
        before, after = t < bt[0], t > bt[-1]
        pos = np.where(before, (t - bt[0]) / (bt[1] - bt[0]), pos)
        return np.where(after, bt.size - 1 + (t - bt[-1]) / (bt[-1] - bt[-2]), pos)

    def time_of_position(self, pos: np.ndarray | float) -> np.ndarray:
        """Inverse of :meth:`beat_position`."""
        pos = np.asarray(pos, dtype=np.float64)
        bt = self.beat_times
        if bt.size < 2:
            return np.full(pos.shape, np.nan)
        t = np.interp(pos, np.arange(bt.size, dtype=np.float64), bt)
        t = np.where(pos < 0, bt[0] + pos * (bt[1] - bt[0]), t)
        return np.where(pos > bt.size - 1, bt[-1] + (pos - bt.size + 1) * (bt[-1] - bt[-2]), t)
