"""Content-addressed cache of model results (stems, notes), shared by runs and sweeps.

An entry's key is a hash of everything its result depends on: the audio's content, the stage's
options, the model's identity and didactic's version. Entries are folders written under a
temporary name and renamed into place, with a ``meta.json`` holding a SHA-256 of every payload
file; an entry whose files do not match is reported, deleted and recomputed, never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from pathlib import Path

import numpy as np

from didactic import __version__
from didactic.audio import Audio
from didactic.stages.transcribe import Notes

log = logging.getLogger(__name__)

NOTE_FIELDS = ("pitch", "velocity", "start_s", "end_s")


def cache_key(stage: str, *parts: object) -> str:
    """A stable hex key from JSON-able parts (sorted keys, so dict order does not matter)."""
    text = json.dumps([stage, __version__, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def array_hash(x: np.ndarray) -> str:
    """Content hash of an array (shape and dtype included)."""
    h = hashlib.sha256(f"{x.shape}{x.dtype}".encode())
    h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()


class StageCache:
    """Stems and notes by key under ``root``; ``root=None`` disables the cache."""

    def __init__(self, root: Path | None) -> None:
        self.root = Path(root).expanduser() if root is not None else None
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def remove_stale_temp(self, max_age_s: float = 3600.0) -> int:
        """Delete temporary entry folders a killed process left behind. Only old ones: a run
        sharing the cache may be writing a young one right now."""
        if self.root is None or not self.root.is_dir():
            return 0
        now, removed = time.time(), 0
        for tmp in self.root.glob("*/*/.*.tmp-*"):
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > max_age_s:
                    shutil.rmtree(tmp)
                    removed += 1
        return removed

    def _entry(self, kind: str, key: str) -> Path:
        assert self.root is not None
        return self.root / kind / key[:2] / key

    def _load(self, kind: str, key: str) -> dict[str, np.ndarray] | None:
        if self.root is None:
            return None
        entry = self._entry(kind, key)
        meta_path = entry / "meta.json"
        if not meta_path.is_file():
            self.misses += 1
            return None
        try:
            meta = json.loads(meta_path.read_text())
            arrays = {}
            for name, digest in meta["files"].items():
                data = (entry / name).read_bytes()
                if hashlib.sha256(data).hexdigest() != digest:
                    raise ValueError(f"{name} does not match its checksum")
                arrays[Path(name).stem] = np.load(entry / name, allow_pickle=False)
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            log.warning("cache entry %s is corrupt (%s); recomputing", entry, exc)
            shutil.rmtree(entry, ignore_errors=True)
            self.misses += 1
            return None
        self.hits += 1
        return arrays

    def _save(self, kind: str, key: str, arrays: dict[str, np.ndarray], info: dict) -> None:
        if self.root is None:
            return
        entry = self._entry(kind, key)
        if (entry / "meta.json").is_file():
            return
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.parent / f".{key}.tmp-{secrets.token_hex(4)}"
        try:
            tmp.mkdir()
            files = {}
            for name, arr in arrays.items():
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)
                files[f"{name}.npy"] = hashlib.sha256(
                    (tmp / f"{name}.npy").read_bytes()
                ).hexdigest()
            (tmp / "meta.json").write_text(json.dumps({"files": files, **info}, indent=1))
            # If another process stored the same entry first, keep theirs.
            with contextlib.suppress(OSError):
                os.rename(tmp, entry)
        except OSError as exc:
            log.warning("could not write cache entry %s (%s)", entry, exc)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def load_stems(self, key: str) -> dict[str, Audio] | None:
        """Cached stems, or None. Stem order is restored from the entry's metadata."""
        arrays = self._load("separate", key)
        if arrays is None:
            return None
        meta = json.loads((self._entry("separate", key) / "meta.json").read_text())
        return {name: Audio(arrays[name], meta["sr"]) for name in meta["order"]}

    def save_stems(self, key: str, stems: dict[str, Audio]) -> None:
        srs = {a.sr for a in stems.values()}
        self._save(
            "separate",
            key,
            {n: a.samples for n, a in stems.items()},
            {"sr": srs.pop(), "order": list(stems)},
        )

    def load_notes(self, key: str) -> Notes | None:
        arrays = self._load("transcribe", key)
        if arrays is None:
            return None
        return Notes(*(arrays[f] for f in NOTE_FIELDS))

    def save_notes(self, key: str, notes: Notes) -> None:
        self._save("transcribe", key, {f: getattr(notes, f) for f in NOTE_FIELDS}, {})
