"""What the user pointed at, as a list of songs: a file, a folder, a glob or a list of them.

Paths are resolved against the directory the command was started in. Song ids are the file
name without extension, made filesystem-safe; when two songs would share an id, each gets a
short hash of its resolved path appended, so ids do not depend on the order songs were found.
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


def slug(text: str) -> str:
    """A filesystem- and SQL-friendly id: letters, digits, ``-``, ``_`` and ``.``."""
    s = re.sub(r"[^\w.-]+", "_", text, flags=re.UNICODE).strip("._")
    return s or "song"


def resolve_songs(song: object, base_dir: Path) -> list[SongRef]:
    """Expand the ``song`` config value into songs, sorted by path."""
    items = list(song) if isinstance(song, list | tuple) or _is_listconfig(song) else [song]
    if not items or any(i in (None, "") for i in items):
        raise ConfigError("song", song, "a file, folder, glob or list of them (song=foo.wav)")
    paths: list[Path] = []
    for item in items:
        paths.extend(_expand(str(item), base_dir))
    paths = sorted(set(paths))
    return _with_ids(paths)


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
