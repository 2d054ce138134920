"""A full disk and a read-only output directory, on real small file systems (tmpfs).

Mounting needs root (CI runs as root); elsewhere these tests are skipped and say why.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from didactic.synth import SongSpec, render_song, write_song


@contextlib.contextmanager
def tmpfs(path: Path, size: str, readonly: bool = False):
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {res.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("disk")
    return write_song(render_song(SongSpec(tempo_bpm=110, n_bars=4, seed=9)), folder, "song")["mix"]


def test_full_disk_fails_the_song_and_leaves_no_partial_file(cli, song, tmp_path, tiny_demucs_repo):
    # 600 kB: room for Hydra's files, the manifest and records, not for four float stems.
    with tmpfs(tmp_path / "small", "600k") as run_dir:
        res = cli(
            f"song={song}",
            f"separator.repo={tiny_demucs_repo}",
            "stems=4",
            "transcriber=none",
            "cache.enabled=false",
            f"hydra.run.dir={run_dir}",
        )
        assert res.code == 1, res.err
        manifest = pq.read_table(run_dir / "manifest.parquet").to_pylist()
        row = manifest[0]
        assert row["status"] == "failed" and row["error_type"] == "StorageError"
        assert "No space left on device" in row["message"] and str(run_dir) in row["message"]
        files = [p for p in run_dir.rglob("*") if p.is_file()]
        assert not [p for p in files if ".tmp-" in p.name]
        assert not (run_dir / "songs").exists() or not any((run_dir / "songs").rglob("*.wav"))
        assert not (run_dir / "tables").exists() or not any((run_dir / "tables").rglob("*.parquet"))


def test_read_only_output_directory_is_one_clear_line(cli, song, tmp_path):
    with tmpfs(tmp_path / "ro", "1m", readonly=True) as ro:
        res = cli(f"song={song}", "stems=0", f"hydra.run.dir={ro / 'run'}")
        assert res.code == 2
        line = res.err.strip()
        assert len(line.splitlines()) == 1 and "Traceback" not in res.err
        assert line.startswith("didactic: cannot write the run's files (Read-only file system")
        assert str(ro) in line
