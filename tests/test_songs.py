"""Resolving the song value: file, folder, glob, list; ids stable and unique."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from didactic.errors import ConfigError
from didactic.songs import resolve_songs


def _wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(100, np.float32), 8000)
    return path


def test_file_folder_glob_list(tmp_path: Path) -> None:
    a = _wav(tmp_path / "set" / "a.wav")
    b = _wav(tmp_path / "set" / "sub" / "b.wav")
    (tmp_path / "set" / "notes.txt").write_text("x")
    assert [s.path for s in resolve_songs("set/a.wav", tmp_path)] == [a]
    assert [s.path for s in resolve_songs("set", tmp_path)] == [a, b]
    assert [s.path for s in resolve_songs("set/**/*.wav", tmp_path)] == [a, b]
    assert [s.song_id for s in resolve_songs(["set/sub/b.wav", "set/a.wav"], tmp_path)] == [
        "a",
        "b",
    ]


def test_same_name_in_two_folders_gets_distinct_stable_ids(tmp_path: Path) -> None:
    _wav(tmp_path / "x" / "intro.wav")
    _wav(tmp_path / "y" / "intro.wav")
    ids = [s.song_id for s in resolve_songs("**/*.wav", tmp_path)]
    assert len(set(ids)) == 2 and all(i.startswith("intro-") for i in ids)
    again = [s.song_id for s in resolve_songs(["y/intro.wav", "x/intro.wav"], tmp_path)]
    assert sorted(again) == sorted(ids)


def test_ids_are_filesystem_safe(tmp_path: Path) -> None:
    _wav(tmp_path / "Ünïcode song (live).wav")
    (song,) = resolve_songs("Ünïcode song (live).wav", tmp_path)
    assert song.song_id == "Ünïcode_song_live" and "/" not in song.song_id


@pytest.mark.parametrize("value", ["missing.wav", "empty_dir", "*.flac"])
def test_nothing_to_process_is_a_config_error(tmp_path: Path, value: str) -> None:
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(ConfigError, match="song="):
        resolve_songs(value, tmp_path)
