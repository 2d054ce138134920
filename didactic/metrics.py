"""The mir_eval metrics of ``task=evaluate``, as pure functions from arrays to numbers.

Beat F-measure and continuity (CMLt, AMLt), downbeat F-measure, tempo Acc1/Acc2, note matching
and precision/recall/F1 from counts. They read no files and know nothing of runs or reference
folders, so each can be checked on its own. A metric the reference cannot support is NaN
(``None`` for the tempo accuracies), never 0; mir_eval's warnings about such empty inputs are
silenced for that reason.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import mir_eval
import numpy as np

if TYPE_CHECKING:  # for annotations only: didactic.reference imports this module
    from didactic.reference import RefNotes

TEMPO_TOLERANCE = 0.04  # Acc1/Acc2 window, relative to the (scaled) reference tempo
ACC2_FACTORS = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
MIN_NOTE_S = 1e-3  # zero-length notes are given this length (mir_eval needs positive ones)


def _quiet(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a mir_eval function without its warnings about empty inputs (we report nulls)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fn(*args, **kwargs)


def beat_scores(ref: np.ndarray, est: np.ndarray, trim_s: float = 0.0) -> dict[str, float]:
    """F-measure, CMLt and AMLt of ``est`` against ``ref``, both trimmed to ``>= trim_s``.

    NaN where the reference leaves them undefined (no beats; fewer than 2 for continuity).
    """
    r, e = ref[ref >= trim_s], est[est >= trim_s]
    out = {"beat_f": math.nan, "cmlt": math.nan, "amlt": math.nan}
    if r.size:
        out["beat_f"] = float(_quiet(mir_eval.beat.f_measure, r, e))
    if r.size >= 2:
        _, cmlt, _, amlt = _quiet(mir_eval.beat.continuity, r, e)
        out["cmlt"], out["amlt"] = float(cmlt), float(amlt)
    return out


def downbeat_f(ref: np.ndarray | None, est: np.ndarray, trim_s: float = 0.0) -> float:
    """mir_eval's beat F-measure on downbeat times; NaN without reference downbeats."""
    if ref is None:
        return math.nan
    r = ref[ref >= trim_s]
    if not r.size:
        return math.nan
    return float(_quiet(mir_eval.beat.f_measure, r, est[est >= trim_s]))


def tempo_accuracy(est_bpm: float, ref_bpm: float) -> tuple[bool | None, bool | None]:
    """Acc1 (within 4 %) and Acc2 (the same at 1, 2, 1/2, 3 or 1/3 times the reference).

    ``None`` when the reference tempo is undefined; an undefined estimate is wrong.
    """
    if not (math.isfinite(ref_bpm) and ref_bpm > 0):
        return None, None
    if not math.isfinite(est_bpm):
        return False, False
    ok = [abs(est_bpm - f * ref_bpm) <= TEMPO_TOLERANCE * f * ref_bpm for f in ACC2_FACTORS]
    return ok[0], any(ok)


def prf(n_ref: int, n_est: int, n_match: int) -> tuple[float, float, float]:
    """Precision, recall and F1 from counts; NaN where a denominator is 0 (F: no reference)."""
    p = n_match / n_est if n_est else math.nan
    r = n_match / n_ref if n_ref else math.nan
    f = 2.0 * n_match / (n_ref + n_est) if n_ref else math.nan
    return p, r, f


def match_notes(
    ref: RefNotes,
    est_intervals: np.ndarray,
    est_pitches: np.ndarray,
    onset_tolerance: float,
    offset_ratio: float | None,
) -> list[tuple[int, int]]:
    """mir_eval's note matching (pitch within 50 cents; MIDI pitches converted to Hz)."""
    if not len(ref) or not len(est_pitches):
        return []
    return _quiet(
        mir_eval.transcription.match_notes,
        ref.intervals,
        mir_eval.util.midi_to_hz(ref.pitches.astype(np.float64)),
        est_intervals,
        mir_eval.util.midi_to_hz(np.asarray(est_pitches, dtype=np.float64)),
        onset_tolerance=onset_tolerance,
        offset_ratio=offset_ratio,
    )
