"""Stages that tests plug in through ``_target_``, like a user's own classes."""

from __future__ import annotations

import os
import time
from pathlib import Path

from didactic.audio import Audio
from didactic.stages.separate import SongAudio


class CountingSeparator:
    """Splits the mix into two half-level stems and appends a line to ``log_file`` per call,
    so a test can count how often separation really ran (across processes). Plugged into the
    demucs group, it is handed (and ignores) Demucs' options, as a drop-in class would."""

    model_id = "counting-v1"

    def __init__(self, log_file: str, gain: float = 0.5, **demucs_options) -> None:
        del demucs_options
        self.log_file, self.gain = Path(log_file), gain

    def __call__(self, song: SongAudio) -> dict[str, Audio]:
        with open(self.log_file, "a") as fh:
            fh.write(f"{os.getpid()} {song.song_id}\n")
        x = song.audio.samples * self.gain
        return {"left": Audio(x, song.audio.sr), "right": Audio(x.copy(), song.audio.sr)}


class SlowSeparator(CountingSeparator):
    """A counting separator that takes ``delay_s`` per song: room to kill a run mid-song."""

    def __init__(self, log_file: str, delay_s: float = 1.0, **kw):
        super().__init__(log_file, **kw)
        self.delay_s = delay_s

    def __call__(self, song: SongAudio) -> dict[str, Audio]:
        time.sleep(self.delay_s)
        return super().__call__(song)


class HangingSeparator(CountingSeparator):
    """Hangs for good on songs whose id contains ``hang_on`` (a hung model, for timeouts)."""

    def __init__(self, log_file: str, hang_on: str = "hang", **kw) -> None:
        super().__init__(log_file, **kw)
        self.hang_on = hang_on

    def __call__(self, song: SongAudio) -> dict[str, Audio]:
        if self.hang_on in song.song_id:
            while True:
                time.sleep(1)
        return super().__call__(song)


class CrashingSeparator(CountingSeparator):
    """Kills its own process on songs whose id contains ``crash_on`` (a segfaulting model)."""

    def __init__(self, log_file: str, crash_on: str = "crash", **kw) -> None:
        super().__init__(log_file, **kw)
        self.crash_on = crash_on

    def __call__(self, song: SongAudio) -> dict[str, Audio]:
        if self.crash_on in song.song_id:
            os.kill(os.getpid(), 9)
        return super().__call__(song)


class HangingTranscriber:
    """A transcriber that never returns."""

    sample_rate = 22050
    model_id = "hanging"

    def __init__(self, **basic_pitch_options) -> None:
        del basic_pitch_options

    def __call__(self, y):
        while True:
            time.sleep(1)


class FailingSeparator(CountingSeparator):
    """A separator whose model is broken: every call raises."""

    def __call__(self, song: SongAudio) -> dict[str, Audio]:
        super().__call__(song)
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
