"""What the user pointed at, as a list of songs: a file, a folder, a glob, a list of them, or a
manifest (CSV or Parquet with a ``path`` column and optional ``song_id``, ``time_signature``
and ``stems`` columns).

Paths are resolved against the directory the command was started in (a manifest's own paths
against the manifest's folder). Song ids are the file name without extension, made
filesystem-safe; when two songs would share an id, each gets a short hash of its resolved path
appended, so ids do not depend on the order songs were found. Files inside a song's stems
folder (``<name>_stems/`` beside ``<name>.wav``) are stems, not songs.
"""

from __future__ import annotations

import glob
import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from didactic.audio import AUDIO_EXTENSIONS
from didactic.errors import ConfigError


@dataclass(frozen=True)
class SongRef:
    """One song to process."""

    song_id: str
    path: Path
    time_signature: str | None = None
    stems_dir: Path | None = None


def slug(text: str) -> str:
    """A filesystem- and SQL-friendly id: letters, digits, ``-``, ``_`` and ``.``."""
    s = re.sub(r"[^\w.-]+", "_", text, flags=re.UNICODE).strip("._")
    return s or "song"


def resolve_songs(song: object, base_dir: Path) -> list[SongRef]:
    """Expand the ``song`` config value into songs, sorted by path."""
    items = list(song) if isinstance(song, list | tuple) or _is_listconfig(song) else [song]
    if not items or any(i in (None, "") for i in items):
        raise ConfigError("song", song, "a file, folder, glob or list of them (song=foo.wav)")
    if len(items) == 1 and str(items[0]).lower().endswith(MANIFEST_EXTENSIONS):
        return _from_manifest(_absolute(str(items[0]), base_dir), str(items[0]))
    paths: list[Path] = []
    for item in items:
        paths.extend(_expand(str(item), base_dir))
    paths = _drop_stems(sorted(set(paths)))
    return _with_ids(paths)


MANIFEST_EXTENSIONS = (".csv", ".parquet")


def _absolute(item: str, base_dir: Path) -> Path:
    p = Path(item).expanduser()
    return p if p.is_absolute() else base_dir / p


def _from_manifest(path: Path, given: str) -> list[SongRef]:
    """Songs listed in a CSV or Parquet manifest."""
    import pandas as pd

    if not path.is_file():
        raise ConfigError("song", given, f"an existing manifest file (not found: {path})")
    try:
        df = (
            pd.read_csv(path, dtype=str) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
        )
    except Exception as exc:
        raise ConfigError("song", given, f"a readable CSV or Parquet manifest ({exc})") from None
    if "path" not in df.columns:
        raise ConfigError("song", given, "a manifest with a 'path' column")
    if df.empty:
        raise ConfigError("song", given, "a manifest listing at least one song")
    root = path.parent
    refs: list[SongRef] = []
    for row, rec in enumerate(df.to_dict("records"), start=2 if path.suffix == ".csv" else 0):
        song = _absolute(str(rec["path"]), root).resolve()
        if not song.is_file():
            raise ConfigError("song", given, f"a manifest whose files exist (row {row}: {song})")
        sid = _cell(rec.get("song_id"))
        ts = _cell(rec.get("time_signature"))
        stems = _cell(rec.get("stems"))
        refs.append(
            SongRef(slug(sid) if sid else "", song, ts, _absolute(stems, root) if stems else None)
        )
    missing = [r.path for r in refs if not r.song_id]
    auto = {p: sid for p, sid in zip(missing, (r.song_id for r in _with_ids(missing)), strict=True)}
    refs = [
        r if r.song_id else SongRef(auto[r.path], r.path, r.time_signature, r.stems_dir)
        for r in refs
    ]
    dupes = [k for k, n in Counter(r.song_id for r in refs).items() if n > 1]
    if dupes:
        raise ConfigError("song", given, f"a manifest with unique song ids (repeated: {dupes[0]})")
    return sorted(refs, key=lambda r: r.song_id)


def _cell(value: object) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    return text or None


def _drop_stems(paths: list[Path]) -> list[Path]:
    """Leave out files in ``<name>_stems/`` folders that sit beside a song ``<name>.*``."""
    songs = {(p.parent, p.stem) for p in paths}
    return [
        p
        for p in paths
        if not (p.parent.name.endswith("_stems") and (p.parent.parent, p.parent.name[:-6]) in songs)
    ]


def _expand(item: str, base_dir: Path) -> Iterable[Path]:
    p = Path(item).expanduser()
    p = p if p.is_absolute() else base_dir / p
    if any(ch in item for ch in "*?["):
        found = [Path(x) for x in glob.glob(str(p), recursive=True)]
        found = [f.resolve() for f in found if f.is_file() and _is_audio(f)]
        if not found:
            raise ConfigError("song", item, "a glob that matches at least one audio file")
        return found
    if p.is_dir():
        found = [f.resolve() for f in p.rglob("*") if f.is_file() and _is_audio(f)]
        if not found:
            raise ConfigError(
                "song", item, f"a folder holding audio files ({', '.join(AUDIO_EXTENSIONS)})"
            )
        return found
    if not p.exists():
        raise ConfigError("song", item, f"an existing file or folder (not found: {p})")
    return [p.resolve()]


def _is_audio(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS and not path.name.startswith(".")


def _with_ids(paths: list[Path]) -> list[SongRef]:
    base = [slug(p.stem) for p in paths]
    counts = Counter(base)
    refs = []
    for b, p in zip(base, paths, strict=True):
        sid = b if counts[b] == 1 else f"{b}-{hashlib.sha1(str(p).encode()).hexdigest()[:8]}"
        refs.append(SongRef(sid, p))
    return refs


def _is_listconfig(x: object) -> bool:
    from omegaconf import ListConfig

    return isinstance(x, ListConfig)
