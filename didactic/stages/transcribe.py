"""Transcription of pitched stems to notes: Basic Pitch on its bundled ONNX model, or none.

A transcriber is built once per process and called per stem with mono audio at its
``sample_rate``; it returns :class:`Notes`. Basic Pitch is fed arrays directly (no temporary
files): we reproduce its windowing from ``basic_pitch.inference`` and call its own note
creation, so thresholds mean exactly what they mean in ``basic_pitch.inference.predict``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class Notes:
    """Note events of one stem, as parallel arrays sorted by onset."""

    pitch: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    velocity: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    start_s: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    end_s: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))

    def __len__(self) -> int:
        return int(self.pitch.size)

    @classmethod
    def from_events(cls, events: list[tuple[float, float, int, int]]) -> Notes:
        """Build from ``(start_s, end_s, pitch, velocity)`` tuples."""
        if not events:
            return cls()
        arr = sorted(events, key=lambda e: (e[0], e[2]))
        start, end, pitch, vel = (np.array(c) for c in zip(*arr, strict=True))
        return cls(
            pitch.astype(np.int32),
            vel.astype(np.int32),
            start.astype(np.float64),
            end.astype(np.float64),
        )


class NoTranscriber:
    """Transcribes nothing: every notes table is empty."""

    sample_rate = 22050
    model_id = "none"

    def __call__(self, y: np.ndarray) -> Notes:
        del y
        return Notes()


class BasicPitchTranscriber:
    """Basic Pitch (ICASSP 2022 model) through onnxruntime, loaded once.

    Parameters mirror ``basic_pitch.inference.predict``; ``minimum_note_length_ms`` is its
    ``minimum_note_length``.
    """

    model_id = "basic-pitch:icassp_2022:onnx"

    def __init__(
        self,
        onset_threshold: float = 0.5,
        frame_threshold: float = 0.3,
        minimum_note_length_ms: float = 127.7,
        minimum_frequency: float | None = None,
        maximum_frequency: float | None = None,
        melodia_trick: bool = True,
        multiple_pitch_bends: bool = False,
    ) -> None:
        from didactic._basic_pitch import load_model

        self.onset_threshold = onset_threshold
        self.frame_threshold = frame_threshold
        self.minimum_note_length_ms = minimum_note_length_ms
        self.minimum_frequency = minimum_frequency
        self.maximum_frequency = maximum_frequency
        self.melodia_trick = melodia_trick
        self.multiple_pitch_bends = multiple_pitch_bends
        self.model = load_model()

    def set_threads(self, threads: int) -> None:
        """Run the model on at most ``threads`` cores."""
        from didactic._basic_pitch import load_model

        self.model = load_model(threads)

    @property
    def sample_rate(self) -> int:
        from basic_pitch.constants import AUDIO_SAMPLE_RATE

        return int(AUDIO_SAMPLE_RATE)

    def __call__(self, y: np.ndarray) -> Notes:
        from basic_pitch import note_creation
        from basic_pitch.constants import AUDIO_N_SAMPLES, AUDIO_SAMPLE_RATE, FFT_HOP
        from basic_pitch.inference import unwrap_output, window_audio_file

        n_overlap = 30  # frames, as in basic_pitch.inference.run_inference
        overlap_len = n_overlap * FFT_HOP
        hop = AUDIO_N_SAMPLES - overlap_len
        y = np.asarray(y, dtype=np.float32)
        if not np.any(y):
            return Notes()
        padded = np.concatenate([np.zeros(overlap_len // 2, np.float32), y])
        output: dict[str, list[np.ndarray]] = {"note": [], "onset": [], "contour": []}
        for window, _ in window_audio_file(padded, hop):
            for k, v in self.model.predict(window[None]).items():
                output[k].append(v)
        unwrapped = {
            k: unwrap_output(np.concatenate(v), y.size, n_overlap) for k, v in output.items()
        }
        min_len = int(np.round(self.minimum_note_length_ms / 1000 * (AUDIO_SAMPLE_RATE / FFT_HOP)))
        _, events = note_creation.model_output_to_notes(
            unwrapped,
            onset_thresh=self.onset_threshold,
            frame_thresh=self.frame_threshold,
            min_note_len=min_len,
            min_freq=self.minimum_frequency,
            max_freq=self.maximum_frequency,
            include_pitch_bends=False,
            multiple_pitch_bends=self.multiple_pitch_bends,
            melodia_trick=self.melodia_trick,
        )
        return Notes.from_events(
            [(float(s), float(e), int(p), round(127 * float(a))) for s, e, p, a, _ in events]
        )
