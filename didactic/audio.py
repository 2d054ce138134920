"""Reading, validating, resampling and writing audio.

A song is decoded once at its native rate and channels into an :class:`Audio`; every stage asks
it for the view it needs (``mono(sr)``, ``resampled(sr)``), which is resampled with soxr once and
remembered.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from didactic.atomic import write_bytes
from didactic.errors import AudioError
from didactic.retry import io_retry

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".m4a")
# Decoded by libsndfile through soundfile; the rest (m4a/AAC) goes through ffmpeg.
FFMPEG_EXTENSIONS = (".m4a",)


class Audio:
    """Samples as float32 ``(channels, n)`` at their native rate, with memoized views.

    Parameters
    ----------
    samples
        Array of shape ``(channels, n)`` or ``(n,)`` (mono).
    sr
        Sample rate in Hz.
    """

    def __init__(self, samples: np.ndarray, sr: int, content_hash: str = "") -> None:
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim == 1:
            samples = samples[None, :]
        if samples.ndim != 2:
            raise ValueError(f"audio must be (channels, n), got shape {samples.shape}")
        self.samples = samples
        self.sr = int(sr)
        self.content_hash = content_hash  # SHA-256 of the file it was decoded from, if any
        self._views: dict[tuple[int, bool], np.ndarray] = {}

    @property
    def channels(self) -> int:
        return self.samples.shape[0]

    @property
    def n_samples(self) -> int:
        return self.samples.shape[1]

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sr

    def resampled(self, sr: int) -> np.ndarray:
        """All channels at ``sr``, shape ``(channels, n)``."""
        return self._view(sr, mono=False)

    def mono(self, sr: int) -> np.ndarray:
        """Channel mean at ``sr``, shape ``(n,)``: the view every analysis stage reads."""
        return self._view(sr, mono=True)

    def _view(self, sr: int, mono: bool) -> np.ndarray:
        key = (int(sr), mono)
        if key not in self._views:
            # Downmix before resampling: the same result for a linear resampler, at 1/C the cost.
            x = self.samples.mean(axis=0, keepdims=True) if mono else self.samples
            if sr != self.sr:
                x = soxr.resample(x.T, self.sr, sr, quality="HQ").T
            x = np.ascontiguousarray(x, dtype=np.float32)
            self._views[key] = x[0] if mono else x
        return self._views[key]


@io_retry
def _read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def read_audio(path: str | Path) -> Audio:
    """Decode ``path`` at its native rate and channels, rejecting unusable audio.

    The bytes are read once (transient I/O errors retried), hashed and decoded from memory;
    a decode error is never retried.

    Raises
    ------
    AudioError
        Missing, unreadable or non-audio file, zero length, or NaN/Inf samples.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file does not exist")
    if not path.is_file():
        raise AudioError(path, "not a file")
    raw = _read_bytes(path)
    digest = hashlib.sha256(raw).hexdigest()
    try:
        if path.suffix.lower() in FFMPEG_EXTENSIONS:
            data, sr = _read_with_ffmpeg(path)
        else:
            data, sr = sf.read(io.BytesIO(raw), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(path, f"not a readable audio file ({_first_line(exc)})") from None
    if data.shape[0] == 0:
        raise AudioError(path, "zero-length audio (no samples)")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(path, f"{bad} samples are NaN or Inf")
    return Audio(data.T, sr, digest)


def _read_with_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    """Decode with ffmpeg to a temporary float WAV (native rate and channels), then read it."""
    import shutil
    import subprocess
    import tempfile

    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(path, f"{path.suffix} needs ffmpeg, which is not on PATH")
    with tempfile.TemporaryDirectory(prefix="didactic-") as tmp:
        wav = Path(tmp) / "decoded.wav"
        res = subprocess.run(
            [
                ffmpeg,
                "-nostdin",
                "-v",
                "error",
                "-i",
                str(path),
                "-vn",
                "-c:a",
                "pcm_f32le",
                str(wav),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if res.returncode != 0 or not wav.is_file():
            raise ValueError(res.stderr.strip() or f"ffmpeg exited with {res.returncode}")
        return sf.read(wav, dtype="float32", always_2d=True)


def write_audio(path: str | Path, samples: np.ndarray, sr: int, subtype: str = "FLOAT") -> None:
    """Write ``samples`` (``(channels, n)`` or ``(n,)``) as WAV atomically."""
    samples = np.asarray(samples)
    frames = samples.T if samples.ndim == 2 else samples
    # Encoded in memory, then written as bytes: a failing disk raises a real OSError (ENOSPC,
    # EROFS, EIO) naming the file, instead of libsndfile's generic error.
    buf = io.BytesIO()
    sf.write(buf, frames, sr, subtype=subtype, format="WAV")
    write_bytes(path, buf.getvalue())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
