"""Per-bar audio chunks: the samples of each bar, cut on the grid's bar boundaries."""

from __future__ import annotations

import numpy as np

from didactic.grid import BeatGrid


def bar_chunks(samples: np.ndarray, sr: int, grid: BeatGrid) -> list[tuple[int, np.ndarray]]:
    """Split ``(channels, n)`` or ``(n,)`` audio into ``(bar_index, chunk)`` pairs.

    Boundaries are the grid's bar starts rounded to the nearest sample, so consecutive chunks
    tile the signal exactly: concatenated, they give back the input.
    """
    n = samples.shape[-1]
    cuts = np.rint(grid.bar_starts * sr).astype(np.int64).clip(0, n)
    ends = np.concatenate([cuts[1:], [n]])
    return [
        (int(b), samples[..., s:e]) for b, s, e in zip(grid.bar_numbers, cuts, ends, strict=True)
    ]
