"""Decoding once, rejecting unusable audio with one clear reason, resampling with soxr."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from didactic.audio import Audio, read_audio, write_audio
from didactic.errors import AudioError

SR = 44100


def _sine(seconds: float = 1.0, sr: int = SR, f: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text("not audio at all"), "not a readable audio file"),
        (lambda p: p.write_bytes(b""), "not a readable audio file"),
        (lambda p: sf.write(p, np.zeros((0, 2), np.float32), SR, subtype="FLOAT"), "zero-length"),
        (
            lambda p: sf.write(p, np.array([0.1, np.nan, 0.2], np.float32), SR, subtype="FLOAT"),
            "NaN or Inf",
        ),
        (
            lambda p: sf.write(p, np.array([0.1, np.inf, 0.2], np.float32), SR, subtype="FLOAT"),
            "NaN or Inf",
        ),
    ],
    ids=["missing", "text", "empty-file", "zero-length", "nan", "inf"],
)
def test_unusable_audio_is_rejected_with_reason(tmp_path: Path, make, reason: str) -> None:
    path = tmp_path / "bad song.wav"
    make(path)
    with pytest.raises(AudioError, match=reason) as info:
        read_audio(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="not a file"):
        read_audio(tmp_path)


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_native_rate_and_channels_kept(tmp_path: Path, channels: int, subtype: str) -> None:
    x = np.stack([_sine(0.5) * (1 - 0.1 * c) for c in range(channels)], axis=1)
    path = tmp_path / "s.wav"
    sf.write(path, x, SR, subtype=subtype)
    a = read_audio(path)
    assert a.sr == SR and a.channels == channels and a.n_samples == x.shape[0]
    np.testing.assert_allclose(a.samples.T, x, atol=1e-4)


def test_views_are_resampled_once_and_remembered() -> None:
    a = Audio(np.stack([_sine(), _sine()]), SR)
    mono = a.mono(22050)
    assert mono.shape == (22050,) and mono is a.mono(22050)
    stereo = a.resampled(16000)
    assert stereo.shape == (2, 16000)
    # soxr keeps the sine's level and frequency
    assert np.sqrt(np.mean(mono[1000:-1000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)
    spectrum = np.abs(np.fft.rfft(mono))
    assert np.argmax(spectrum) * 22050 / mono.size == pytest.approx(440, abs=2)


def test_flac_and_ogg_decode(tmp_path: Path) -> None:
    for fmt, ext in (("FLAC", "flac"), ("OGG", "ogg")):
        path = tmp_path / f"s.{ext}"
        sf.write(path, _sine(1.0), SR, format=fmt)
        a = read_audio(path)
        assert a.sr == SR and a.n_samples == pytest.approx(SR, abs=2048)


def test_write_audio_is_atomic_and_readable(tmp_path: Path) -> None:
    path = tmp_path / "out" / "x.wav"
    write_audio(path, np.stack([_sine(), _sine()]), SR)
    assert sf.info(path).channels == 2 and sf.info(path).subtype == "FLOAT"
    assert [p.name for p in path.parent.iterdir()] == ["x.wav"]


def test_m4a_decodes_with_ffmpeg_or_says_it_needs_it(tmp_path: Path) -> None:
    import shutil
    import subprocess

    wav = tmp_path / "s.wav"
    sf.write(wav, _sine(1.0), SR)
    m4a = tmp_path / "s.m4a"
    if shutil.which("ffmpeg") is None:
        m4a.write_bytes(b"\0" * 100)
        with pytest.raises(AudioError, match="needs ffmpeg"):
            read_audio(m4a)
        return
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(wav), str(m4a)], check=True)
    a = read_audio(m4a)
    assert a.sr == SR and a.n_samples == pytest.approx(SR, abs=4096)


def test_transient_write_errors_are_retried_and_counted(tmp_path: Path, monkeypatch) -> None:
    import errno

    from didactic import retry
    from didactic.atomic import write_bytes

    real = Path.write_bytes
    failures = {"left": 2}

    def flaky(self: Path, data: bytes) -> int:
        if failures["left"]:
            failures["left"] -= 1
            raise OSError(errno.EIO, "Input/output error")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", flaky)
    retry.reset()
    write_bytes(tmp_path / "t.bin", b"abc")
    assert (tmp_path / "t.bin").read_bytes() == b"abc" and retry.retries() == 2


def test_full_disk_and_decode_errors_are_not_retried(tmp_path: Path, monkeypatch) -> None:
    import errno

    from didactic import retry
    from didactic.atomic import write_bytes

    calls = {"n": 0}

    def full(self: Path, data: bytes) -> int:
        calls["n"] += 1
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    retry.reset()
    with pytest.raises(OSError, match="No space left") as info:
        write_bytes(tmp_path / "t.bin", b"abc")
    assert calls["n"] == 1 and retry.retries() == 0 and info.value.filename.endswith("t.bin")
    monkeypatch.undo()
    (tmp_path / "x.wav").write_text("not audio")
    with pytest.raises(AudioError):
        read_audio(tmp_path / "x.wav")
    assert retry.retries() == 0
