"""The real Basic Pitch model (ONNX, shipped in its wheel) on rendered notes of known pitch."""

from __future__ import annotations

import mir_eval
import numpy as np
import pytest

from didactic.audio import Audio
from didactic.stages.transcribe import BasicPitchTranscriber, Notes
from didactic.synth import SongSpec, render_song

# Note-level F1 (pitch + onset within 50 ms, offsets ignored) measured on these songs:
# bass 0.89, other 1.00, vocals 0.92-0.95. The floor leaves room for numeric drift only.
F1_FLOOR = 0.80


@pytest.fixture(scope="module")
def transcriber() -> BasicPitchTranscriber:
    return BasicPitchTranscriber()


def _hz(midi: np.ndarray) -> np.ndarray:
    return 440.0 * 2 ** ((np.asarray(midi, dtype=float) - 69) / 12)


@pytest.mark.parametrize("stem", ["bass", "other", "vocals"])
def test_note_onsets_match_truth(transcriber: BasicPitchTranscriber, stem: str) -> None:
    song = render_song(SongSpec(tempo_bpm=100, n_bars=8, seed=1))
    notes = transcriber(Audio(song.stems[stem], song.sr).mono(transcriber.sample_rate))
    ref = song.notes[stem]
    ref_iv = np.array([[n.start_s, n.end_s] for n in ref])
    est_iv = np.stack([notes.start_s, notes.end_s], axis=1)
    p, r, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref_iv, _hz([n.pitch for n in ref]), est_iv, _hz(notes.pitch), offset_ratio=None
    )
    print(f"{stem}: note onset F1={f1:.3f} P={p:.3f} R={r:.3f} ({len(notes)} est, {len(ref)} ref)")
    assert f1 >= F1_FLOOR, f"{stem}: note onset F1 {f1:.3f} below floor {F1_FLOOR}"
    assert np.all(np.diff(notes.start_s) >= 0) and np.all(notes.end_s > notes.start_s)
    assert notes.velocity.min() >= 1 and notes.velocity.max() <= 127


def test_silence_gives_no_notes(transcriber: BasicPitchTranscriber) -> None:
    notes = transcriber(np.zeros(22050 * 3, dtype=np.float32))
    assert isinstance(notes, Notes) and len(notes) == 0
