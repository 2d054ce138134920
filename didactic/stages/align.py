"""Placing notes on the beat and bar grid, vectorized over notes."""

from __future__ import annotations

import numpy as np

from didactic.grid import BeatGrid
from didactic.stages.transcribe import Notes


def align_notes(notes: Notes, grid: BeatGrid, steps_per_beat: int) -> dict[str, np.ndarray]:
    """Grid positions of every note.

    Returns columns (one value per note):

    - ``start_beat``, ``end_beat``: fractional beat coordinates (beat ``k`` at ``k``).
    - ``beat_index``: the beat at or before the onset; -1 for a note before the first beat
      (stored as null).
    - ``bar_index``: the bar holding the onset; ``beat_in_bar``: 1-based beat of ``beat_index``
      in its bar (-1 -> null before the first beat).
    - ``bar_position``: beats from the bar's downbeat (bar 0 counts back from bar 1, as a pickup).
    - ``*_q``: the same snapped to ``1/steps_per_beat`` of a beat; a quantized note lasts at
      least one step, and ``start_s_q``/``end_s_q`` are the grid times of the snapped positions.
    """
    start_beat = grid.beat_position(notes.start_s)
    end_beat = grid.beat_position(notes.end_s)
    beat_index = np.floor(start_beat).astype(np.int64)
    before = beat_index < 0
    beat_index = np.where(before, -1, np.minimum(beat_index, grid.n_beats - 1))
    beat_in_bar = np.where(before, -1, grid.beat_in_bar[np.maximum(beat_index, 0)])
    bar_index = grid.bar_of_time(notes.start_s)

    q = float(steps_per_beat)
    start_q = np.rint(start_beat * q) / q
    end_q = np.maximum(np.rint(end_beat * q) / q, start_q + 1 / q)
    start_s_q = grid.time_of_position(start_q)
    bar_index_q = grid.bar_of_time(start_s_q)
    return {
        "beat_index": beat_index,
        "bar_index": bar_index,
        "beat_in_bar": beat_in_bar,
        "start_beat": start_beat,
        "end_beat": end_beat,
        "bar_position": start_beat - _bar_origin(grid, bar_index),
        "start_beat_q": start_q,
        "end_beat_q": end_q,
        "start_s_q": start_s_q,
        "end_s_q": grid.time_of_position(end_q),
        "bar_index_q": bar_index_q,
        "bar_position_q": start_q - _bar_origin(grid, bar_index_q),
    }


def _bar_origin(grid: BeatGrid, bar_index: np.ndarray) -> np.ndarray:
    """Beat coordinate of each bar's downbeat; bar 0's is one full bar before bar 1's."""
    db = grid.downbeats.astype(np.float64)
    if not db.size:
        return np.zeros(np.shape(bar_index))
    k = np.clip(np.asarray(bar_index) - 1, 0, db.size - 1)
    return np.where(np.asarray(bar_index) == 0, db[0] - grid.meter.beats_per_bar, db[k])
