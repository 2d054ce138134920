"""Shared fixtures: the CLI run in-process and as a real process, rendered songs, a tiny Demucs."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from didactic.synth import RenderedSong, SongSpec, render_song, write_song

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def _cli_runner(capsys, monkeypatch):
    """Run ``python -m didactic ARGS`` in this process; returns exit code, stdout, stderr."""
    from hydra.core.global_hydra import GlobalHydra

    from didactic import cli as cli_mod

    def run(*args: str, cwd: Path | None = None) -> CliResult:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", ["didactic", *with_test_cache(args)])
        GlobalHydra.instance().clear()
        cli_mod._exit_code = 0
        capsys.readouterr()
        try:
            cli_mod.main()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        finally:
            GlobalHydra.instance().clear()
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``python -m didactic ARGS`` in this process; returns exit code, stdout, stderr."""
    return _cli_runner(capsys, monkeypatch)


@pytest.fixture(scope="module")
def cli_module():
    """The in-process CLI for module-scoped fixtures (no output capture)."""
    mp = pytest.MonkeyPatch()

    class _Capture:
        """Like capsys: swaps in fresh buffers for stdout and stderr at each read."""

        def readouterr(self):
            out = getattr(sys.stdout, "getvalue", lambda: "")()
            err = getattr(sys.stderr, "getvalue", lambda: "")()
            mp.setattr(sys, "stdout", io.StringIO())
            mp.setattr(sys, "stderr", io.StringIO())
            return CliResult(0, out, err)

    try:
        yield _cli_runner(_Capture(), mp)
    finally:
        mp.undo()


TEST_CACHE = Path(tempfile.gettempdir()) / f"didactic-test-cache-{os.getpid()}"


def with_test_cache(args: tuple[str, ...] | list[str]) -> list[str]:
    """Point runs at a per-session cache folder unless the test chose one (tests never write
    to the user's cache)."""
    args = list(args)
    chose = any(a.startswith(("paths.cache_dir=", "cache.enabled=")) for a in args)
    if not chose and "--cfg" not in args:
        args.append(f"paths.cache_dir={TEST_CACHE}")
    return args


def run_process(*args: str, cwd: Path, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """Run the real ``python -m didactic`` in a fresh process."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **kw.pop("env", {})}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", "didactic", *with_test_cache(args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


@pytest.fixture(scope="session", autouse=True)
def _clean_test_cache():
    yield
    shutil.rmtree(TEST_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_demucs_repo(tmp_path_factory) -> Path:
    """A local Demucs weights folder with tiny random-weight htdemucs and htdemucs_6s."""
    from tiny_demucs import SOURCES_6, build_tiny_demucs

    folder = tmp_path_factory.mktemp("demucs_repo")
    build_tiny_demucs(folder, "htdemucs")
    build_tiny_demucs(folder, "htdemucs_6s", SOURCES_6)
    return folder


@dataclass
class SongFiles:
    song: RenderedSong
    mix: Path
    stems_dir: Path
    folder: Path


@pytest.fixture(scope="session")
def make_song(tmp_path_factory):
    """Render a song from a SongSpec into its own folder (cached per spec)."""
    cache: dict[tuple, SongFiles] = {}

    def make(name: str = "song", **spec_kwargs) -> SongFiles:
        key = (name, tuple(sorted(spec_kwargs.items())))
        if key not in cache:
            spec = SongSpec(**spec_kwargs)
            song = render_song(spec)
            folder = tmp_path_factory.mktemp(name)
            paths = write_song(song, folder, name=name)
            cache[key] = SongFiles(song, Path(paths["mix"]), folder / f"{name}_stems", folder)
        return cache[key]

    return make
