"""Config schemas (one dataclass per group) and whole-config validation.

The schemas are registered in Hydra's ConfigStore so that composition type-checks every value;
:func:`validate` then checks ranges and cross-field rules before any work starts. Every failure
is a :class:`~didactic.errors.ConfigError` naming the key, the value and what is allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from didactic.errors import ConfigError

# Keys of a stage's config group that the pipeline consumes itself; everything else is passed
# to the stage's ``_target_`` class as keyword arguments.
PIPELINE_KEYS = frozenset({"_target_", "timeout_s", "timeout_per_audio_minute_s", "skip_stems"})

# Config sections that change how a run is carried out but not what it computes: left out of
# the config fingerprint, so resuming with more workers or another cache folder is allowed.
EXECUTION_KEYS = ("runner", "cache", "paths", "task", "evaluate")

STEM_CHOICES = (0, 2, 4, 6)
DEVICE_CHOICES = ("auto", "cpu", "cuda")
AUDIO_SUBTYPES = ("FLOAT", "PCM_16", "PCM_24")


@dataclass
class SeparatorConf:
    """Base schema of the ``separator`` group."""

    _target_: str = MISSING
    timeout_s: float = 3600.0
    timeout_per_audio_minute_s: float = 0.0  # added to timeout_s per minute of audio


@dataclass
class DemucsConf(SeparatorConf):
    """Demucs through its Python API. ``model`` defaults from ``stems``; ``repo`` is a local
    folder of weights for offline use."""

    _target_: str = "didactic.stages.separate.DemucsSeparator"
    model: str | None = None
    repo: str | None = None
    shifts: int = 1
    overlap: float = 0.25
    segment: float | None = None


@dataclass
class PrecomputedConf(SeparatorConf):
    """Stems the user already has. ``path`` is a folder, or a pattern with ``{song_dir}``,
    ``{song_stem}`` (file name without extension) and ``{song_id}``; it holds one audio file
    per stem, named by the stem."""

    _target_: str = "didactic.stages.separate.PrecomputedSeparator"
    path: str = "{song_dir}/{song_stem}_stems"


@dataclass
class NoSeparatorConf(SeparatorConf):
    """No separation: the mix is the one stem."""

    _target_: str = "didactic.stages.separate.NoSeparator"


@dataclass
class RhythmConf:
    """Tempo and beat tracking (librosa), refined onto onsets."""

    _target_: str = "didactic.stages.rhythm.BeatTracker"
    start_bpm: float = 120.0
    bpm_range: list[float] = field(default_factory=lambda: [30.0, 320.0])  # allowed tempi
    tightness: float = 100.0
    snap_window_s: float = 0.07
    reanchor_cost: float = 4.0  # evidence needed to start a bar a beat early or late


@dataclass
class FeaturesConf:
    """Per-bar features from one STFT per stem."""

    _target_: str = "didactic.stages.features.BarFeatureExtractor"
    n_fft: int = 2048
    n_mels: int = 64
    n_mfcc: int = 13
    rolloff_percent: float = 0.85
    contrast_bands: int = 6
    contrast_fmin: float = 200.0


@dataclass
class TranscriberConf:
    """Base schema of the ``transcriber`` group."""

    _target_: str = MISSING
    timeout_s: float = 1800.0
    timeout_per_audio_minute_s: float = 0.0  # added to timeout_s per minute of audio
    skip_stems: list[str] = field(default_factory=lambda: ["drums"])


@dataclass
class BasicPitchConf(TranscriberConf):
    """Basic Pitch (the ONNX model its package ships); thresholds as in its ``predict``."""

    _target_: str = "didactic.stages.transcribe.BasicPitchTranscriber"
    onset_threshold: float = 0.5
    frame_threshold: float = 0.3
    minimum_note_length_ms: float = 127.7
    minimum_frequency: float | None = None
    maximum_frequency: float | None = None
    melodia_trick: bool = True
    multiple_pitch_bends: bool = False


@dataclass
class NoTranscriberConf(TranscriberConf):
    """No transcription: the notes table is written empty."""

    _target_: str = "didactic.stages.transcribe.NoTranscriber"


@dataclass
class ChunksConf:
    """Per-bar WAV chunks of every stem."""

    enabled: bool = False
    preserve: bool = False  # native rate and channels instead of analysis_sr mono


@dataclass
class AlignConf:
    """Note-to-grid alignment; ``grid`` is a note value such as ``1/16``."""

    grid: str = "1/16"
    quantized_midi: bool = False  # also write <stem>.quantized.mid, notes snapped to the grid


@dataclass
class OutputConf:
    """What a run writes besides the tables."""

    write_stems: bool = True
    audio_subtype: str = "FLOAT"


@dataclass
class RunnerConf:
    """How songs are spread over worker processes (the ``runner`` group)."""

    n_jobs: int = 1
    threads_per_job: int | None = None  # null: cores // n_jobs
    max_failures: int | None = None  # stop the run after this many failed songs
    breaker_failures: int | None = 5  # consecutive failures that stop calling a model stage
    progress: str = "auto"  # auto (rich bars on a terminal), rich, plain


@dataclass
class CacheConf:
    """The content-addressed cache of separation and transcription results."""

    enabled: bool = True


@dataclass
class PathsConf:
    """Folders outside the run directory."""

    cache_dir: str = "~/.cache/didactic"


@dataclass
class EvaluateConf:
    """``task=evaluate``: score a finished run against reference annotations with mir_eval.

    ``reference`` is a folder holding, per song (named like the song file without its
    extension), ``<name>.beats.txt`` (one beat per line: time in seconds, optionally followed by
    its 1-based position in the bar), optionally ``<name>.downbeats.txt``, and reference MIDI:
    ``<name>.mid`` with one instrument per stem, or ``<name>/<stem>.mid``.
    """

    run_dir: str | None = None  # the run directory to score
    reference: str | None = None  # folder of reference annotations
    onset_tolerance_s: float = 0.05  # note onset window (mir_eval's default)
    offset_ratio: float = 0.2  # note offset window as a share of the note's length
    beat_trim_s: float = 0.0  # beats before this time are ignored (MIREX uses 5 s)
    baseline: bool = True  # also score the naive grid: first beat = downbeat, 4/4


TASK_CHOICES = ("run", "evaluate")


@dataclass
class Config:
    """The whole run. ``stems`` null means: what the separator gives (demucs 4, none 0,
    precomputed whatever the folder holds)."""

    task: str = "run"  # run: process songs; evaluate: score a run against references
    song: Any = MISSING
    stems: int | None = None
    analysis_sr: int = 22050
    time_signature: str = "4/4"
    hop_length: int = 512
    device: str = "auto"
    seed: int = 0
    separator: SeparatorConf = MISSING
    rhythm: RhythmConf = field(default_factory=RhythmConf)
    features: FeaturesConf = field(default_factory=FeaturesConf)
    transcriber: TranscriberConf = MISSING
    chunks: ChunksConf = field(default_factory=ChunksConf)
    align: AlignConf = field(default_factory=AlignConf)
    output: OutputConf = field(default_factory=OutputConf)
    runner: RunnerConf = MISSING
    cache: CacheConf = field(default_factory=CacheConf)
    paths: PathsConf = field(default_factory=PathsConf)
    evaluate: EvaluateConf = field(default_factory=EvaluateConf)


def register_configs() -> None:
    """Register every schema so the YAML files in ``conf/`` can extend them."""
    cs = ConfigStore.instance()
    cs.store(name="didactic_schema", node=Config)
    for group, name, node in (
        ("separator", "demucs_schema", DemucsConf),
        ("separator", "precomputed_schema", PrecomputedConf),
        ("separator", "none_schema", NoSeparatorConf),
        ("rhythm", "rhythm_schema", RhythmConf),
        ("features", "features_schema", FeaturesConf),
        ("transcriber", "basic_pitch_schema", BasicPitchConf),
        ("transcriber", "none_schema", NoTranscriberConf),
        ("runner", "local_schema", RunnerConf),
    ):
        cs.store(group=group, name=name, node=node)


@dataclass(frozen=True)
class TimeSignature:
    """A meter. Compound meters (6/8, 9/8, 12/8) count dotted-quarter beats."""

    numerator: int
    denominator: int

    @classmethod
    def parse(cls, text: str, key: str = "time_signature") -> TimeSignature:
        m = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{1,2})\s*", str(text))
        allowed = "auto, or N/D with N in 1..32 and D in 1, 2, 4, 8, 16 (e.g. 4/4, 3/4, 6/8)"
        if not m:
            raise ConfigError(key, text, allowed)
        num, den = int(m.group(1)), int(m.group(2))
        if not 1 <= num <= 32 or den not in (1, 2, 4, 8, 16):
            raise ConfigError(key, text, allowed)
        return cls(num, den)

    @property
    def is_compound(self) -> bool:
        return self.denominator >= 8 and self.numerator % 3 == 0 and self.numerator > 3

    @property
    def beats_per_bar(self) -> int:
        return self.numerator // 3 if self.is_compound else self.numerator

    @property
    def beat_fraction(self) -> Fraction:
        """Length of one counted beat as a fraction of a whole note."""
        return Fraction(3 if self.is_compound else 1, self.denominator)

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator}"


AUTO_METER = "auto"
# What time_signature=auto can choose (didactic.stages.bars.estimate_meter).
AUTO_METERS = ("2/4", "3/4", "4/4", "6/8", "9/8", "12/8")


def parse_meter(text: str, key: str = "time_signature") -> TimeSignature | None:
    """A time signature, or None for ``auto`` (estimated from each song's audio)."""
    if str(text).strip().lower() == AUTO_METER:
        return None
    return TimeSignature.parse(text, key)


def grid_steps_per_beat(grid: str, meter: TimeSignature, key: str = "align.grid") -> int:
    """How many grid steps one counted beat holds (``1/16`` in 4/4: 4, in 6/8: 6)."""
    m = re.fullmatch(r"\s*1\s*/\s*(\d{1,3})\s*", str(grid))
    if not m or int(m.group(1)) == 0:
        raise ConfigError(key, grid, "a note value 1/N such as 1/8, 1/16 or 1/12")
    steps = meter.beat_fraction / Fraction(1, int(m.group(1)))
    if steps.denominator != 1:
        raise ConfigError(
            key, grid, f"a note value that divides the beat of {meter} evenly (e.g. 1/16)"
        )
    return int(steps)


def _check_range(key: str, value: float | None, lo: float, hi: float, *, optional=False) -> None:
    if value is None and optional:
        return
    if value is None or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(key, value, f"a number from {lo:g} to {hi:g}")


def _check_choice(key: str, value: object, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(key, value, "one of " + ", ".join(map(str, choices)))


def validate(cfg: Config) -> None:
    """Check ranges and cross-field rules of a typed config; raise ConfigError on the first
    problem. Files that must exist are checked where the songs are resolved."""
    if cfg.stems is not None:
        _check_choice("stems", cfg.stems, STEM_CHOICES)
    _check_range("analysis_sr", cfg.analysis_sr, 8000, 192000)
    _check_range("hop_length", cfg.hop_length, 32, 8192)
    meter = parse_meter(cfg.time_signature)
    _check_choice("device", cfg.device, DEVICE_CHOICES)
    _check_range("seed", cfg.seed, 0, 2**32 - 1)

    sep = cfg.separator
    _check_range("separator.timeout_s", sep.timeout_s, 0.1, 7 * 24 * 3600)
    _check_range("separator.timeout_per_audio_minute_s", sep.timeout_per_audio_minute_s, 0, 86400)
    if isinstance(sep, DemucsConf):
        _check_range("separator.shifts", sep.shifts, 0, 20)
        _check_range("separator.overlap", sep.overlap, 0, 0.99)
        _check_range("separator.segment", sep.segment, 1, 600, optional=True)
        if sep.repo is not None and not Path(sep.repo).is_dir():
            raise ConfigError("separator.repo", sep.repo, "an existing folder of Demucs weights")
    if isinstance(sep, NoSeparatorConf) and cfg.stems not in (None, 0):
        raise ConfigError("stems", cfg.stems, "0 (or unset) with separator=none")

    r = cfg.rhythm
    _check_range("rhythm.start_bpm", r.start_bpm, 20, 400)
    rng = list(r.bpm_range)
    if len(rng) != 2 or not 20 <= rng[0] < rng[1] <= 400:
        raise ConfigError("rhythm.bpm_range", rng, "[low, high] with 20 <= low < high <= 400")
    _check_range("rhythm.tightness", r.tightness, 0.1, 10000)
    _check_range("rhythm.snap_window_s", r.snap_window_s, 0, 0.2)
    _check_range("rhythm.reanchor_cost", r.reanchor_cost, 0, 1000)

    f = cfg.features
    _check_range("features.n_fft", f.n_fft, 64, 65536)
    if f.n_fft < cfg.hop_length:
        raise ConfigError("features.n_fft", f.n_fft, f"at least hop_length ({cfg.hop_length})")
    _check_range("features.n_mels", f.n_mels, 8, 512)
    _check_range("features.n_mfcc", f.n_mfcc, 1, f.n_mels)
    _check_range("features.rolloff_percent", f.rolloff_percent, 0.01, 0.99)
    _check_range("features.contrast_bands", f.contrast_bands, 1, 10)
    _check_range("features.contrast_fmin", f.contrast_fmin, 1, cfg.analysis_sr / 2)
    # librosa's contrast needs every band's lower edge (up to fmin * 2**(bands-1)) below Nyquist.
    if f.contrast_fmin * 2 ** (f.contrast_bands - 1) >= cfg.analysis_sr / 2:
        raise ConfigError(
            "features.contrast_bands",
            f.contrast_bands,
            f"at most {_max_bands(f.contrast_fmin, cfg.analysis_sr)} with "
            f"contrast_fmin={f.contrast_fmin:g} at analysis_sr={cfg.analysis_sr}",
        )

    t = cfg.transcriber
    _check_range("transcriber.timeout_s", t.timeout_s, 0.1, 7 * 24 * 3600)
    _check_range("transcriber.timeout_per_audio_minute_s", t.timeout_per_audio_minute_s, 0, 86400)
    if isinstance(t, BasicPitchConf):
        _check_range("transcriber.onset_threshold", t.onset_threshold, 0.01, 0.99)
        _check_range("transcriber.frame_threshold", t.frame_threshold, 0.01, 0.99)
        _check_range("transcriber.minimum_note_length_ms", t.minimum_note_length_ms, 1, 10000)
        _check_range("transcriber.minimum_frequency", t.minimum_frequency, 1, 11025, optional=True)
        _check_range("transcriber.maximum_frequency", t.maximum_frequency, 1, 11025, optional=True)
        lo, hi = t.minimum_frequency, t.maximum_frequency
        if lo is not None and hi is not None and lo >= hi:
            raise ConfigError("transcriber.maximum_frequency", hi, f"above minimum_frequency {lo}")

    if meter is not None:
        grid_steps_per_beat(cfg.align.grid, meter)
    for text in AUTO_METERS if meter is None else ():
        try:
            grid_steps_per_beat(cfg.align.grid, TimeSignature.parse(text))
        except ConfigError:
            raise ConfigError(
                "align.grid",
                cfg.align.grid,
                f"a note value that divides the beat of every meter time_signature=auto can "
                f"choose ({', '.join(AUTO_METERS)}; {text} is not divided), e.g. 1/16",
            ) from None
    _check_choice("task", cfg.task, TASK_CHOICES)
    _check_choice("output.audio_subtype", cfg.output.audio_subtype, AUDIO_SUBTYPES)

    run = cfg.runner
    _check_range("runner.n_jobs", run.n_jobs, 1, 1024)
    _check_range("runner.threads_per_job", run.threads_per_job, 1, 1024, optional=True)
    _check_range("runner.max_failures", run.max_failures, 1, 10**9, optional=True)
    _check_range("runner.breaker_failures", run.breaker_failures, 1, 10**9, optional=True)
    _check_choice("runner.progress", run.progress, ("auto", "rich", "plain"))


def _max_bands(fmin: float, sr: int) -> int:
    n = 1
    while fmin * 2**n < sr / 2:
        n += 1
    return n
