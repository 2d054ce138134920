"""Deterministic pure-numpy song renderer with exact ground truth.

Songs are built as MIDI (a small pop/rock arrangement: drums, bass, chords and a sung-like
lead) and rendered sample-accurately with additive/wavetable and noise synthesis, so that
beat, downbeat and note annotations are exact.  Used by the demo and the test suite.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pretty_midi
import soundfile as sf
from scipy.signal import butter, sosfilt

from didactic.config import TimeSignature
from didactic.errors import ConfigError

logger = logging.getLogger(__name__)

STEM_NAMES = ("drums", "bass", "other", "vocals")
KICK, SNARE, HAT = 36, 38, 42
TICKS_PER_QUARTER = 960
PEAK = 0.9
# I-V-vi-IV in C, one chord per bar: (bass root, triad voicing 55-72, melody tones 64-80).
PROGRESSION = (
    (36, (60, 64, 67), (64, 67, 72, 76, 79)),
    (43, (55, 59, 62), (67, 71, 74, 79)),
    (45, (57, 60, 64), (64, 69, 72, 76)),
    (41, (57, 60, 65), (65, 69, 72, 77)),
)
_PICKUP_CHORD = PROGRESSION[1]  # the V chord leads into bar 1
_PAN = {"bass": -0.1, "other": 0.3, "vocals": -0.2, KICK: 0.0, SNARE: -0.1, HAT: 0.35}
_PROGRAMS = {"drums": 0, "bass": 33, "other": 4, "vocals": 54}
_LEVEL = {"bass": 0.45, "other": 0.16, "vocals": 0.3, KICK: 1.0, SNARE: 0.6, HAT: 0.15}
_TABLE_N = 1 << 16
_DRUM_DUR = {KICK: 0.35, SNARE: 0.22, HAT: 0.07}


@dataclass(frozen=True)
class Meter:
    """Parsed time signature: counted beats per bar, beat length and eighths per beat."""

    numerator: int
    denominator: int
    beats_per_bar: int
    quarters_per_beat: float
    subdivisions: int  # eighth notes per counted beat (hi-hat grid)

    @property
    def ticks_per_beat(self) -> int:
        """MIDI ticks of one counted beat at ``TICKS_PER_QUARTER``."""
        return round(TICKS_PER_QUARTER * self.quarters_per_beat)


def parse_time_signature(time_signature: str) -> Meter:
    """The synth's view of a meter, parsed by the one parser the pipeline uses
    (:class:`didactic.config.TimeSignature`: N/8 with N a multiple of 3 above 3 is compound)."""
    try:
        ts = TimeSignature.parse(time_signature)
    except ConfigError as err:
        raise ValueError(f"bad time signature {time_signature!r}: {err.allowed}") from None
    qpb = float(4 * ts.beat_fraction)
    return Meter(ts.numerator, ts.denominator, ts.beats_per_bar, qpb, max(1, round(2 * qpb)))


@dataclass(frozen=True)
class SongSpec:
    """What to render; every field has a sensible default (8 bars of 4/4 at 120 BPM)."""

    tempo_bpm: float = 120.0
    time_signature: str = "4/4"
    n_bars: int = 8
    pickup_beats: int = 0
    leading_silence_s: float = 0.0
    trailing_s: float = 1.0
    sr: int = 44100
    channels: int = 2
    seed: int = 0
    drumless_intro_bars: int = 0
    swing: float = 0.0
    tempo_end_bpm: float | None = None
    # Step changes: ``(bar, bpm)`` pairs, bar numbered as in notation (1 = first downbeat);
    # from that bar's downbeat on, the tempo is ``bpm``. Not combined with ``tempo_end_bpm``.
    tempo_steps: tuple[tuple[int, float], ...] = ()

    @property
    def meter(self) -> Meter:
        """Parsed ``time_signature``."""
        return parse_time_signature(self.time_signature)

    @property
    def n_beats(self) -> int:
        """Counted beats in the song, pickup included."""
        return self.pickup_beats + self.n_bars * self.meter.beats_per_bar


@dataclass
class Note:
    """One ground-truth note (seconds, MIDI pitch and velocity)."""

    pitch: int
    start_s: float
    end_s: float
    velocity: int


@dataclass
class RenderedSong:
    """Rendered audio (mix and stems) plus exact annotations and the source MIDI."""

    spec: SongSpec
    sr: int
    mix: np.ndarray
    stems: dict[str, np.ndarray]
    beat_times: np.ndarray
    downbeat_times: np.ndarray
    notes: dict[str, list[Note]]
    midi: pretty_midi.PrettyMIDI

    @property
    def duration_s(self) -> float:
        """Length of the audio in seconds."""
        return self.mix.shape[1] / self.sr

    @property
    def beats_per_bar(self) -> int:
        """Counted beats per bar (2 for 6/8, 4 for 12/8)."""
        return self.spec.meter.beats_per_bar

    @property
    def first_downbeat_s(self) -> float:
        """Time of bar 1 (after leading silence and pickup)."""
        return float(self.downbeat_times[0])


def beat_grid(spec: SongSpec) -> np.ndarray:
    """Times of beat positions 0..n_beats (last = end of the last bar), integrating tempo.

    Tempo is linear in beat position b: bpm(b) = t0 + k b, so t(b) = 60/k ln(1 + k b / t0).
    """
    n = spec.n_beats
    b = np.arange(n + 1, dtype=np.float64)
    t0 = float(spec.tempo_bpm)
    if spec.tempo_steps:
        bpm = np.full(n, t0)  # tempo of each beat interval
        for bar, step_bpm in sorted(spec.tempo_steps):
            bpm[spec.pickup_beats + (int(bar) - 1) * spec.meter.beats_per_bar :] = step_bpm
        return spec.leading_silence_s + np.concatenate([[0.0], np.cumsum(60.0 / bpm)])
    t1 = t0 if spec.tempo_end_bpm is None else float(spec.tempo_end_bpm)
    if abs(t1 - t0) < 1e-12:
        rel = 60.0 * b / t0
    else:
        k = (t1 - t0) / n
        rel = 60.0 / k * np.log1p(k * b / t0)
    return spec.leading_silence_s + rel


def _validate(spec: SongSpec) -> None:
    """Raise ValueError for specs the renderer cannot honour (bad meter, negative counts...)."""
    spec.meter  # noqa: B018 - parses, raising on bad time signatures
    ok = (
        spec.n_bars >= 1
        and spec.pickup_beats >= 0
        and spec.drumless_intro_bars >= 0
        and spec.tempo_bpm > 0
        and (spec.tempo_end_bpm is None or spec.tempo_end_bpm > 0)
        and not (spec.tempo_steps and spec.tempo_end_bpm is not None)
        and all(1 <= int(bar) <= spec.n_bars and bpm > 0 for bar, bpm in spec.tempo_steps)
        and spec.channels in (1, 2)
        and spec.sr >= 8000
        and 0.0 <= spec.swing <= 0.5
        and spec.leading_silence_s >= 0
        and spec.trailing_s >= 0
    )
    if not ok:
        raise ValueError(f"invalid SongSpec: {spec}")


def _drum_beats(beats_per_bar: int) -> tuple[set[int], set[int]]:
    """Kick and snare beats (0-based in the bar): rock backbeat, waltz in 3, kick-snare in 2."""
    n = beats_per_bar
    if n == 3:
        return {0}, {1, 2}
    kicks = {0} | ({n // 2} if n >= 4 and n % 2 == 0 else set())
    return kicks, set(range(1, n, 2))


def _compose(spec: SongSpec, rng: np.random.Generator) -> dict[str, list[tuple]]:
    """Arrangement as (pitch, start_beat, end_beat, velocity) per stem, in beat positions."""
    m = spec.meter
    bpb, sub, p0 = m.beats_per_bar, m.subdivisions, spec.pickup_beats
    ev: dict[str, list[tuple]] = {s: [] for s in STEM_NAMES}
    kicks, snares = _drum_beats(bpb)
    prev = 72
    for bar in range(-1 if p0 else 0, spec.n_bars):
        root, triad, tones = _PICKUP_CHORD if bar < 0 else PROGRESSION[bar % len(PROGRESSION)]
        start = p0 + bar * bpb if bar >= 0 else 0
        n_beats = bpb if bar >= 0 else p0
        for i in range(n_beats):
            ev["bass"].append((root, start + i, start + i + 0.9, 100))
        if bar >= 0:
            ev["other"].extend((p, start, start + bpb - 0.1, 72) for p in triad)
        i = 0
        while i < n_beats:  # lead: one note per beat or per two beats, on chord tones
            d = 2 if bar >= 0 and i + 2 <= n_beats and rng.random() < 0.35 else 1
            cands = np.asarray(tones)
            w = np.exp(-np.abs(cands - prev) / 3.0) * np.where(cands == prev, 0.3, 1.0)
            prev = int(rng.choice(cands, p=w / w.sum()))
            ev["vocals"].append((prev, start + i, start + i + d - 0.15, int(rng.integers(85, 106))))
            i += d
        if bar < spec.drumless_intro_bars:
            continue
        for i in range(bpb):
            b = start + i
            if i in kicks:
                ev["drums"].append((KICK, b, b + 0.25, 120 if i == 0 else 100))
            if i in snares:
                ev["drums"].append((SNARE, b, b + 0.25, 105 if bpb != 3 or i == 1 else 85))
            for j in range(sub):
                off = j / sub + (spec.swing / 2 if sub == 2 and j == 1 else 0.0)
                vel = (110 if i == 0 else 90) if j == 0 else 65
                ev["drums"].append((HAT, b + off, b + off + 0.2 / sub, vel))
    return ev


def _to_notes(ev: dict[str, list[tuple]], grid: np.ndarray, tpb: int) -> dict[str, list[Note]]:
    """Quantize beat positions to MIDI ticks and map them to seconds along the beat grid."""
    idx = np.arange(len(grid), dtype=np.float64)
    notes: dict[str, list[Note]] = {}
    for stem, items in ev.items():
        pos = np.array([[s, e] for _, s, e, _ in items], dtype=np.float64).reshape(-1, 2)
        t = np.interp(np.round(pos * tpb) / tpb, idx, grid)
        lst = [
            Note(int(it[0]), float(a), float(b), int(it[3]))
            for it, (a, b) in zip(items, t, strict=True)
        ]
        notes[stem] = sorted(lst, key=lambda n: (n.start_s, n.pitch))
    return notes


def _build_midi(
    spec: SongSpec, grid: np.ndarray, notes: dict[str, list[Note]]
) -> pretty_midi.PrettyMIDI:
    """PrettyMIDI with one instrument per stem, a per-beat tempo map and the time signature."""
    m = spec.meter
    tpb = m.ticks_per_beat
    qpm0 = spec.tempo_bpm * m.quarters_per_beat
    pm = pretty_midi.PrettyMIDI(resolution=TICKS_PER_QUARTER, initial_tempo=qpm0)
    scales: list[tuple[int, float]] = []
    base = 0
    if grid[0] > 0:  # leading silence: one tempo segment ending exactly on the first beat
        base = max(1, round(grid[0] * qpm0 * TICKS_PER_QUARTER / 60.0))
        scales.append((0, grid[0] / base))
    for i, step in enumerate(np.diff(grid)):
        scale = float(step / tpb)
        if not scales or abs(scale - scales[-1][1]) > 1e-12 * scale:
            scales.append((base + i * tpb, scale))
    pm._tick_scales = scales
    pm._update_tick_to_time(base + spec.n_beats * tpb + 1)
    bar1 = float(grid[spec.pickup_beats])  # restate the meter at bar 1 so bars line up
    pm.time_signature_changes = [
        pretty_midi.TimeSignature(m.numerator, m.denominator, t) for t in sorted({0.0, bar1})
    ]
    for stem in STEM_NAMES:
        inst = pretty_midi.Instrument(_PROGRAMS[stem], is_drum=stem == "drums", name=stem)
        inst.notes = [
            pretty_midi.Note(n.velocity, n.pitch, n.start_s, n.end_s) for n in notes[stem]
        ]
        pm.instruments.append(inst)
    return pm


@lru_cache(maxsize=256)
def _wavetable(kind: str, pitch: int, sr: int) -> np.ndarray:
    """One band-limited period of a tone (float32, 2**16 points: nearest lookup is clean)."""
    f0 = pretty_midi.note_number_to_hz(pitch)
    if kind == "bass":  # saw, low-passed at ~700 Hz
        k = np.arange(1, 25)
        amps = (1.0 / k) / np.sqrt(1.0 + (k * f0 / 700.0) ** 4)
    elif kind == "other":
        k, amps = np.arange(1, 6), np.array([1.0, 0.1, 0.1, 0.03, 0.02])
    else:  # vocals: sine + 3 harmonics
        k, amps = np.arange(1, 5), np.array([1.0, 0.2, 0.1, 0.04])
    keep = k * f0 < 0.45 * sr
    x = np.arange(_TABLE_N) / _TABLE_N
    table = (amps[keep, None] * np.sin(2 * np.pi * k[keep, None] * x)).sum(axis=0)
    return (table / np.abs(table).max()).astype(np.float32)


def _envelope(
    n_on: int, sr: int, attack_s: float, release_s: float, sustain: float, decay_s: float
) -> np.ndarray:
    """Linear attack from 0, exponential decay to ``sustain``, raised-cosine release to 0."""
    n_rel = max(1, round(release_s * sr))
    env = np.full(n_on + n_rel, sustain, dtype=np.float32)
    n_dec = min(n_on, round(8 * decay_s * sr))  # exp(-8) ~ 3e-4: treat as settled afterwards
    env[:n_dec] += (1.0 - sustain) * np.exp(-np.arange(n_dec, dtype=np.float32) / (decay_s * sr))
    n_att = min(n_on, max(1, round(attack_s * sr)))
    env[:n_att] *= np.arange(n_att, dtype=np.float32) / n_att
    last = env[n_on - 1]
    env[n_on:] = last * 0.5 * (1.0 + np.cos(np.pi * np.arange(1, n_rel + 1) / n_rel))
    return env


_TONE = {  # kind: (attack, release, sustain, decay, vibrato cents)
    "bass": (0.005, 0.03, 0.7, 0.15, 0.0),
    "other": (0.010, 0.08, 0.6, 0.40, 0.0),
    "vocals": (0.010, 0.04, 0.85, 0.20, 15.0),
}


def _tone(kind: str, note: Note, sr: int) -> np.ndarray:
    """Wavetable tone (float32) for a pitched note, from its onset to the end of its release."""
    attack, release, sustain, decay, cents = _TONE[kind]
    n_on = max(1, round(note.end_s * sr) - round(note.start_s * sr))
    env = _envelope(n_on, sr, attack, release, sustain, decay)
    f0 = pretty_midi.note_number_to_hz(note.pitch)
    phase = np.arange(len(env), dtype=np.float64)  # phase in table samples
    if cents:  # vibrato ramping in over 150 ms; exp2(x) ~ 1 + x ln2 for these tiny depths
        t = phase / sr
        vib = np.sin(2 * np.pi * 5.5 * t) * np.minimum(t / 0.15, 1.0)
        phase += np.cumsum(vib) * (cents / 1200.0 * np.log(2.0))
    phase *= f0 * _TABLE_N / sr
    idx = phase.astype(np.int64) & (_TABLE_N - 1)
    wave = _wavetable(kind, note.pitch, sr)[idx]
    wave *= env
    wave *= np.float32(note.velocity / 127.0 * _LEVEL[kind])
    return wave


class _DrumKit:
    """Drum voices for one render; snare/hat noise is a random slice of a pre-filtered bank
    (much cheaper than filtering per hit, and still different on every hit)."""

    def __init__(self, sr: int, rng: np.random.Generator) -> None:
        self.rng = rng
        t = {p: np.arange(round(d * sr)) / sr for p, d in _DRUM_DUR.items()}
        tk = t[KICK]
        cyc = 45.0 * tk + 110.0 * 0.03 * (1.0 - np.exp(-tk / 0.03))
        self.kick = np.sin(2 * np.pi * cyc) * np.exp(-tk / 0.12) * np.minimum(tk / 5e-4, 1.0)
        ts = t[SNARE]
        self.snare_tone = 0.5 * np.sin(2 * np.pi * 190.0 * ts) * np.exp(-ts / 0.03)
        self.env = {SNARE: 2.0 * np.exp(-ts / 0.05), HAT: 2.0 * np.exp(-t[HAT] / 0.018)}
        bp = butter(2, [1000.0, min(6000.0, 0.45 * sr)], btype="bandpass", fs=sr, output="sos")
        hp = butter(4, min(7000.0, 0.35 * sr), btype="highpass", fs=sr, output="sos")
        self.bank = {
            SNARE: sosfilt(bp, rng.standard_normal(2 * sr)),
            HAT: sosfilt(hp, rng.standard_normal(2 * sr)),
        }

    def hit(self, note: Note) -> np.ndarray:
        """Kick (pitched-down sine sweep), snare (band noise + tone) or hat (high-passed noise)."""
        scale = note.velocity / 127.0 * _LEVEL[note.pitch]
        if note.pitch == KICK:
            return scale * self.kick
        env = self.env[note.pitch]
        off = int(self.rng.integers(0, len(self.bank[note.pitch]) - len(env)))
        sig = self.bank[note.pitch][off : off + len(env)] * env
        if note.pitch == SNARE:
            sig = sig + self.snare_tone
        return scale * sig


def _pan_gains(pan: float, channels: int) -> np.ndarray:
    """Constant-power pan gains, shape (channels,); mono ignores the pan."""
    a = (pan + 1.0) * np.pi / 4.0
    return np.ones(1) if channels == 1 else np.array([np.cos(a), np.sin(a)])


def render_song(spec: SongSpec) -> RenderedSong:
    """Compose, build the MIDI and render stems and mix for ``spec`` (bit-deterministic)."""
    _validate(spec)
    rng = np.random.default_rng(spec.seed)
    sr, grid = spec.sr, beat_grid(spec)
    notes = _to_notes(_compose(spec, rng), grid, spec.meter.ticks_per_beat)
    n_samples = max(1, int(np.ceil((grid[-1] + spec.trailing_s) * sr)))
    chans = spec.channels
    stems = {stem: np.zeros((chans, n_samples), dtype=np.float32) for stem in STEM_NAMES}
    kit = _DrumKit(sr, rng)
    for note in notes["drums"]:  # short hits: add straight into the stereo stem
        s0 = round(note.start_s * sr)
        sig = kit.hit(note)[: max(0, n_samples - s0)]
        stems["drums"][:, s0 : s0 + len(sig)] += _pan_gains(_PAN[note.pitch], chans)[:, None] * sig
    mono = np.zeros(n_samples, dtype=np.float32)  # scratch; one pan position per tonal stem
    cache: dict[tuple, np.ndarray] = {}  # identical (pitch, length, velocity) tones are reused
    for stem in STEM_NAMES[1:]:
        mono.fill(0.0)
        for note in notes[stem]:
            s0 = round(note.start_s * sr)
            key = (stem, note.pitch, round(note.end_s * sr) - s0, note.velocity)
            if key not in cache:
                cache[key] = _tone(stem, note, sr)
            sig = cache[key][: max(0, n_samples - s0)]
            mono[s0 : s0 + len(sig)] += sig
        for ch, g in enumerate(_pan_gains(_PAN[stem], chans).astype(np.float32)):
            np.multiply(mono, g, out=stems[stem][ch])
    mix = np.zeros((chans, n_samples), dtype=np.float32)
    for stem in STEM_NAMES:
        mix += stems[stem]
    peak = max(float(mix.max()), -float(mix.min()))
    gain = np.float32(PEAK / peak * (1.0 - 1e-6) if peak > 0 else 1.0)
    mix.fill(0.0)
    for stem in STEM_NAMES:  # one global gain, then re-sum so mix == sum(stems) exactly
        stems[stem] *= gain
        mix += stems[stem]
    return RenderedSong(
        spec=spec,
        sr=sr,
        mix=mix,
        stems=stems,
        beat_times=grid[:-1].copy(),
        downbeat_times=grid[spec.pickup_beats : -1 : spec.meter.beats_per_bar].copy(),
        notes=notes,
        midi=_build_midi(spec, grid, notes),
    )


def write_song(
    song: RenderedSong,
    folder: str | Path,
    name: str = "song",
    subtype: str = "PCM_16",
    fmt: str = "WAV",
) -> dict[str, Any]:
    """Write mix, stems, MIDI and truth JSON under ``folder``; return the paths written.

    Returns ``{"mix": Path, "stems": {stem: Path}, "midi": Path, "truth": Path}``.
    """
    fmt = fmt.upper()
    ext = {"WAV": "wav", "FLAC": "flac"}.get(fmt)
    if ext is None:
        raise ValueError(f"unsupported format {fmt!r}; use WAV or FLAC")
    folder = Path(folder)
    stem_dir = folder / f"{name}_stems"
    stem_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Any] = {
        "mix": folder / f"{name}.{ext}",
        "stems": {},
        "midi": folder / f"{name}.mid",
        "truth": folder / f"{name}.truth.json",
    }
    sf.write(paths["mix"], song.mix.T, song.sr, subtype=subtype, format=fmt)
    for stem, audio in song.stems.items():
        paths["stems"][stem] = stem_dir / f"{stem}.{ext}"
        sf.write(paths["stems"][stem], audio.T, song.sr, subtype=subtype, format=fmt)
    song.midi.write(str(paths["midi"]))
    truth = {
        "spec": asdict(song.spec),
        "sr": song.sr,
        "duration_s": song.duration_s,
        "beats_per_bar": song.beats_per_bar,
        "beat_times": song.beat_times.tolist(),
        "downbeat_times": song.downbeat_times.tolist(),
        "notes": {stem: [asdict(n) for n in lst] for stem, lst in song.notes.items()},
    }
    paths["truth"].write_text(json.dumps(truth, indent=1))
    logger.debug("wrote song %s to %s", name, folder)
    return paths


def load_truth(path: str | Path) -> dict[str, Any]:
    """Read a truth JSON: ``spec`` as SongSpec, times as float64 arrays, notes as Note lists."""
    data = json.loads(Path(path).read_text())
    known = {f.name for f in fields(SongSpec)}
    spec = {k: v for k, v in data["spec"].items() if k in known}
    spec["tempo_steps"] = tuple((int(b), float(t)) for b, t in spec.get("tempo_steps", ()))
    data["spec"] = SongSpec(**spec)
    for key in ("beat_times", "downbeat_times"):
        data[key] = np.asarray(data[key], dtype=np.float64)
    data["notes"] = {stem: [Note(**n) for n in lst] for stem, lst in data["notes"].items()}
    return data
