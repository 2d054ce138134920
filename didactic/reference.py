"""Reading a song's reference annotations: its beats, downbeats, notes and meter.

:mod:`didactic.evaluate` scores a run against these files; reading and checking them lives
here, so the file format and the errors about it are in one place.

Reference annotations live in one folder, per song ``<name>`` (the song file's name without
extension, falling back to the run's song id):

- ``<name>.beats.txt``: one beat per line, the time in seconds, optionally followed by its
  1-based position in the bar (1 = downbeat); ``#`` lines and blank lines are ignored.
- ``<name>.downbeats.txt`` (optional): one downbeat time per line. Without it the downbeats are
  the beats at position 1.
- ``<name>.mid`` with one instrument per stem, named like the stem (drums: ``is_drum``), or a
  folder ``<name>/`` of ``<stem>.mid`` files. The reference meter is the MIDI time signature in
  force at the first reference downbeat.

A file that exists but cannot be read raises :class:`~didactic.errors.ConfigError` under
``evaluate.reference``, naming the file (and, in a text file, the first bad line).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pretty_midi

from didactic.errors import ConfigError
from didactic.grid import MIN_BAR0_S
from didactic.metrics import MIN_NOTE_S

DRUM_STEM = "drums"
REFERENCE_KEY = "evaluate.reference"  # the config key that errors about reference files name


@dataclass
class RefNotes:
    """Reference notes of one stem: ``(n, 2)`` onset/offset seconds and MIDI pitches."""

    intervals: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))
    pitches: np.ndarray = field(default_factory=lambda: np.empty(0))

    def __len__(self) -> int:
        return int(self.pitches.size)

    @classmethod
    def concat(cls, parts: Sequence[RefNotes]) -> RefNotes:
        """All notes of ``parts`` in one set, sorted by onset (then pitch)."""
        if not parts:
            return cls()
        iv = np.concatenate([p.intervals for p in parts]).reshape(-1, 2)
        pitch = np.concatenate([p.pitches for p in parts])
        order = np.lexsort((pitch, iv[:, 0]))
        return cls(iv[order], pitch[order])


@dataclass
class Reference:
    """One song's reference annotations; ``None`` fields were not supplied.

    ``notes`` holds the pitched stems by lower-cased name; drum instruments are left out and
    their stem names listed in ``drum_stems``. ``meter`` is ``"N/D"`` from the MIDI.
    """

    name: str
    files: tuple[Path, ...]
    beat_times: np.ndarray | None = None
    beat_positions: np.ndarray | None = None
    downbeat_times: np.ndarray | None = None
    notes: dict[str, RefNotes] | None = None
    drum_stems: frozenset[str] = frozenset()
    meter: str | None = None

    def pooled_notes(self) -> RefNotes | None:
        """Every pitched reference note in one set (what a run without stems is scored on)."""
        return None if self.notes is None else RefNotes.concat(list(self.notes.values()))

    def bar_of_time(self, t: np.ndarray | float) -> np.ndarray | None:
        """Reference bar number of each time, numbered as :class:`~didactic.grid.BeatGrid`
        numbers bars (bar 1 from the first downbeat, bar 0 before it only if that downbeat is
        later than ``MIN_BAR0_S``); ``None`` without downbeats."""
        db = self.downbeat_times
        if db is None or db.size == 0:
            return None
        count = np.searchsorted(db, np.asarray(t, dtype=np.float64), side="right")
        return count if db[0] > MIN_BAR0_S else np.maximum(count, 1)


def _bad_file(path: Path, what: str) -> ConfigError:
    return ConfigError(REFERENCE_KEY, str(path), what)


def _data_lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every line that is neither blank nor a ``#`` comment."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad_file(path, f"a readable UTF-8 text file ({type(exc).__name__})") from None
    out = []
    for no, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if s and not s.startswith("#"):
            out.append((no, s.replace(",", " ").split()))
    return out


def _parse_time(text: str) -> float | None:
    try:
        t = float(text)
    except ValueError:
        return None
    return t if math.isfinite(t) and t >= 0 else None


def _check_increasing(path: Path, times: np.ndarray, lines: list[int], what: str) -> None:
    bad = np.flatnonzero(np.diff(times) <= 0)
    if bad.size:
        no = lines[bad[0] + 1]
        raise _bad_file(path, f"{what} in strictly increasing time order (line {no} is not)")


def read_beats_file(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Beat times and, when every line gives one, 1-based positions in the bar.

    Raises
    ------
    ConfigError
        Naming the file and the first bad line.
    """
    allowed = "a beats file: one beat per line, seconds then optionally its position in the bar"
    rows = _data_lines(path)
    if not rows:
        raise _bad_file(path, f"{allowed} (the file holds no beats)")
    times, positions, lines = [], [], []
    for no, cols in rows:
        t = _parse_time(cols[0])
        pos = _parse_position(cols[1]) if len(cols) == 2 else None
        if t is None or len(cols) > 2 or (len(cols) == 2 and pos is None):
            raise _bad_file(path, f"{allowed} (line {no}: {' '.join(cols)!r})")
        times.append(t)
        positions.append(pos)
        lines.append(no)
    have = [p is not None for p in positions]
    if any(have) and not all(have):
        no = lines[have.index(False)]
        raise _bad_file(path, f"{allowed}, positions on every line or none (line {no} has none)")
    bt = np.asarray(times, dtype=np.float64)
    _check_increasing(path, bt, lines, "beats")
    return bt, (np.asarray(positions, dtype=np.int64) if all(have) else None)


def _parse_position(text: str) -> int | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return int(v) if v.is_integer() and v >= 1 else None


def read_downbeats_file(path: Path) -> np.ndarray:
    """Downbeat times, one per line.

    Raises
    ------
    ConfigError
        Naming the file and the first bad line.
    """
    allowed = "a downbeats file: one downbeat time in seconds per line"
    times, lines = [], []
    for no, cols in _data_lines(path):
        t = _parse_time(cols[0])
        if t is None or len(cols) != 1:
            raise _bad_file(path, f"{allowed} (line {no}: {' '.join(cols)!r})")
        times.append(t)
        lines.append(no)
    db = np.asarray(times, dtype=np.float64)
    _check_increasing(path, db, lines, "downbeats")
    return db


def _read_midi(path: Path) -> pretty_midi.PrettyMIDI:
    try:
        return pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # mido and pretty_midi raise many types for a broken file
        first = (str(exc).strip().splitlines() or [""])[0][:120]
        raise _bad_file(path, f"a readable MIDI file ({type(exc).__name__}: {first})") from None


def _instrument_notes(inst: pretty_midi.Instrument) -> RefNotes:
    if not inst.notes:
        return RefNotes()
    iv = np.array([[n.start, n.end] for n in inst.notes], dtype=np.float64)
    iv[:, 1] = np.maximum(iv[:, 1], iv[:, 0] + MIN_NOTE_S)
    return RefNotes.concat([RefNotes(iv, np.array([n.pitch for n in inst.notes], np.int64))])


def read_reference_midi(
    files: Sequence[tuple[Path, str | None]], at_s: float
) -> tuple[dict[str, RefNotes], frozenset[str], str | None]:
    """Pitched notes per stem, the drum stems and the meter (``"N/D"`` at ``at_s``).

    ``files`` pairs each MIDI file with the stem all its instruments belong to (a ``<name>/``
    folder of ``<stem>.mid``), or ``None`` to name stems by instrument name (one ``<name>.mid``).
    Drum instruments, and any stem called ``drums``, are not pitched.
    """
    parts: dict[str, list[RefNotes]] = {}
    drums: set[str] = set()
    meter = None
    for path, stem in files:
        pm = _read_midi(path)
        for inst in pm.instruments:
            name = (stem if stem is not None else inst.name).strip().lower()
            if inst.is_drum or name == DRUM_STEM:
                drums.add(name)
            else:
                parts.setdefault(name, []).append(_instrument_notes(inst))
        if meter is None and pm.time_signature_changes:
            meter = _meter_at(pm.time_signature_changes, at_s)
    notes = {k: RefNotes.concat(v) for k, v in sorted(parts.items())}
    return notes, frozenset(drums - set(notes)), meter


def _meter_at(changes: list[pretty_midi.TimeSignature], at_s: float) -> str:
    """The time signature in force at ``at_s`` (the first one if all come later)."""
    changes = sorted(changes, key=lambda c: c.time)
    ts = changes[0]
    for c in changes:
        if c.time <= at_s + 1e-3:
            ts = c
    return f"{ts.numerator}/{ts.denominator}"


def load_reference(folder: Path, name: str) -> Reference | None:
    """Read every reference file of song ``name`` in ``folder``; ``None`` if there is none.

    Raises
    ------
    ConfigError
        When a file exists but cannot be parsed (the message names the file).
    """
    folder = Path(folder)
    beats_path = folder / f"{name}.beats.txt"
    down_path = folder / f"{name}.downbeats.txt"
    midi_file = folder / f"{name}.mid"
    midi_dir = folder / name
    midi: list[tuple[Path, str | None]] = []
    if midi_file.is_file():
        midi = [(midi_file, None)]
    elif midi_dir.is_dir():
        found = sorted(p for p in midi_dir.iterdir() if p.suffix.lower() in (".mid", ".midi"))
        midi = [(p, p.stem) for p in found if p.is_file() and not p.name.startswith(".")]
    files = [p for p in (beats_path, down_path) if p.is_file()] + [p for p, _ in midi]
    if not files:
        return None
    ref = Reference(name=name, files=tuple(files))
    if beats_path.is_file():
        ref.beat_times, ref.beat_positions = read_beats_file(beats_path)
    if down_path.is_file():
        ref.downbeat_times = read_downbeats_file(down_path)
    elif ref.beat_positions is not None:
        ref.downbeat_times = ref.beat_times[ref.beat_positions == 1]
    if midi:
        if ref.downbeat_times is not None and ref.downbeat_times.size:
            at = float(ref.downbeat_times[0])
        elif ref.beat_times is not None:
            at = float(ref.beat_times[0])
        else:
            at = 0.0
        ref.notes, ref.drum_stems, ref.meter = read_reference_midi(midi, at)
    return ref
