"""Many songs: discovery, failure isolation, parallel workers, resume after SIGKILL, cache,
sweeps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from conftest import REPO, run_process, with_test_cache

from didactic import store
from didactic.sweep import read_sweep
from didactic.synth import SongSpec, render_song, write_song

COUNTING = "helpers.CountingSeparator"


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    """Four short rendered songs; two share the file name in different folders."""
    root = tmp_path_factory.mktemp("collection")
    specs = {
        "a/intro": SongSpec(tempo_bpm=100, n_bars=3, seed=1),
        "b/intro": SongSpec(tempo_bpm=120, n_bars=3, seed=2),
        "c/waltz": SongSpec(tempo_bpm=110, time_signature="3/4", n_bars=3, seed=3),
        "d/last": SongSpec(tempo_bpm=90, n_bars=3, seed=4),
    }
    for rel, spec in specs.items():
        folder, name = (root / rel).parent, Path(rel).name
        write_song(render_song(spec), folder, name=name)
    return root


def _table(run_dir: Path, name: str) -> pd.DataFrame:
    df = ds.dataset(run_dir / "tables" / name).to_table().to_pandas()
    keys = [c for c in ("song_id", "stem", "bar_index", "beat_index", "start_s") if c in df]
    return df.sort_values(keys).reset_index(drop=True)


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests"), "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def _start(args: list[str], *more: str, cwd: Path, **popen: object) -> subprocess.Popen:
    """The real CLI in its own process group (so a test can kill it and its workers);
    output discarded unless ``popen`` says otherwise."""
    cmd = [sys.executable, "-m", "didactic", *with_test_cache([*args, *more])]
    opts = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, **popen}
    return subprocess.Popen(cmd, cwd=cwd, env=_env(), start_new_session=True, **opts)


def test_folder_run_isolates_a_corrupt_song(cli, collection, tmp_path) -> None:
    bad = collection / "e" / "broken.wav"
    bad.parent.mkdir(exist_ok=True)
    bad.write_text("this is not audio")
    try:
        res = cli(f"song={collection}", "stems=0", "transcriber=none", f"hydra.run.dir={tmp_path}")
    finally:
        bad.unlink()
    assert res.code == 1
    assert "1 failed" in res.out and "4 ok" in res.out
    manifest = pq.read_table(tmp_path / "manifest.parquet").to_pandas().set_index("song_id")
    assert manifest.loc["broken", "status"] == "failed"
    assert manifest.loc["broken", "error_type"] == "AudioError"
    assert manifest.loc["broken", "stage"] == "load"
    assert "not a readable audio file" in manifest.loc["broken", "message"]
    ok = manifest[manifest.status == "ok"].index.tolist()
    assert len(ok) == 4 and len({i for i in ok if i.startswith("intro-")}) == 2
    # Stems folders beside songs are not songs; every table reads as one dataset.
    songs = _table(tmp_path, "songs")
    assert sorted(songs.song_id) == sorted(ok)
    n = duckdb.sql(f"select count(distinct song_id) from '{tmp_path}/tables/bars/*.parquet'")
    assert n.fetchall()[0][0] == 4
    assert "broken" not in set(_table(tmp_path, "bars").song_id)


def test_manifest_with_ids_and_meters(cli, collection, tmp_path) -> None:
    manifest = tmp_path / "songs.csv"
    pd.DataFrame(
        {
            "path": ["a/intro.wav", "c/waltz.wav"],
            "song_id": ["first", ""],
            "time_signature": ["4/4", "3/4"],
        }
    ).to_csv(manifest, index=False)
    (tmp_path / "a").symlink_to(collection / "a")
    (tmp_path / "c").symlink_to(collection / "c")
    res = cli(f"song={manifest}", "stems=0", "transcriber=none", f"hydra.run.dir={tmp_path / 'r'}")
    assert res.code == 0, res.err
    songs = _table(tmp_path / "r", "songs").set_index("song_id")
    assert sorted(songs.index) == ["first", "waltz"]
    assert songs.loc["waltz", "beats_per_bar"] == 3 and songs.loc["first", "beats_per_bar"] == 4


def test_bad_manifest_is_a_config_error(cli, tmp_path) -> None:
    manifest = tmp_path / "songs.csv"
    manifest.write_text("file\nx.wav\n")
    res = cli(f"song={manifest}", f"hydra.run.dir={tmp_path / 'r'}")
    assert res.code == 2 and "a manifest with a 'path' column" in res.err


def test_two_workers_give_the_same_tables_as_one(cli, collection, tmp_path) -> None:
    common = [f"song={collection}", "stems=0", "transcriber=none"]
    one = cli(*common, "runner.n_jobs=1", f"hydra.run.dir={tmp_path / 'one'}")
    two = cli(*common, "runner.n_jobs=2", f"hydra.run.dir={tmp_path / 'two'}")
    assert one.code == 0 and two.code == 0, two.err
    for name in store.TABLES:
        pd.testing.assert_frame_equal(
            _table(tmp_path / "one", name), _table(tmp_path / "two", name)
        )
    log = (tmp_path / "two" / "didactic.log").read_text()
    assert log.count("audio,") >= 4  # per-song lines from workers reach the run's log file


def test_max_failures_stops_the_run(cli, tmp_path) -> None:
    for i in range(4):
        (tmp_path / "songs" / f"bad{i}.wav").parent.mkdir(exist_ok=True)
        (tmp_path / "songs" / f"bad{i}.wav").write_text("nope")
    res = cli(
        f"song={tmp_path / 'songs'}",
        "stems=0",
        "runner.max_failures=2",
        f"hydra.run.dir={tmp_path / 'r'}",
    )
    assert res.code == 1
    manifest = pq.read_table(tmp_path / "r" / "manifest.parquet").to_pandas()
    assert (manifest.status == "failed").sum() == 2 and (manifest.status == "pending").sum() == 2


def test_cache_hit_skips_separation_and_config_change_invalidates(
    cli, collection, tmp_path
) -> None:
    calls = tmp_path / "calls.txt"
    song = collection / "d" / "last.wav"
    base = [
        f"song={song}",
        f"separator._target_={COUNTING}",
        "transcriber=none",
        f"paths.cache_dir={tmp_path / 'cache'}",
    ]
    sep_cfg = [f"+separator.log_file={calls}"]
    first = cli(*base, *sep_cfg, f"hydra.run.dir={tmp_path / '1'}")
    assert first.code == 0, first.err
    assert len(calls.read_text().splitlines()) == 1
    # A sweep over analysis parameters reuses the stems: the separator is not called again.
    second = cli(*base, *sep_cfg, "analysis_sr=16000", f"hydra.run.dir={tmp_path / '2'}")
    assert second.code == 0 and len(calls.read_text().splitlines()) == 1
    assert _table(tmp_path / "2", "songs").stems[0].tolist() == ["left", "right"]
    # Changing the separator's own config is a new key.
    third = cli(*base, *sep_cfg, "+separator.gain=0.25", f"hydra.run.dir={tmp_path / '3'}")
    assert third.code == 0 and len(calls.read_text().splitlines()) == 2
    # A corrupted entry is detected and recomputed, never used.
    for payload in (tmp_path / "cache" / "separate").rglob("*.npy"):
        data = bytearray(payload.read_bytes())
        mid = len(data) // 2
        data[mid : mid + 64] = bytes(b ^ 0xFF for b in data[mid : mid + 64])
        payload.write_bytes(bytes(data))
    fourth = cli(*base, *sep_cfg, f"hydra.run.dir={tmp_path / '4'}")
    assert fourth.code == 0 and len(calls.read_text().splitlines()) == 3
    assert "is corrupt" in (tmp_path / "4" / "didactic.log").read_text()
    pd.testing.assert_frame_equal(
        _table(tmp_path / "1", "bar_features"), _table(tmp_path / "4", "bar_features")
    )
    # Disabled: always computed.
    fifth = cli(*base, *sep_cfg, "cache.enabled=false", f"hydra.run.dir={tmp_path / '5'}")
    assert fifth.code == 0 and len(calls.read_text().splitlines()) == 4


def test_sigkill_halfway_then_resume_matches_uninterrupted(collection, tmp_path) -> None:
    calls = tmp_path / "calls.txt"
    args = [
        f"song={collection}",
        "separator._target_=helpers.SlowSeparator",
        f"+separator.log_file={calls}",
        "+separator.delay_s=1.0",
        "transcriber=none",
        "cache.enabled=false",
    ]
    ref = run_process(*args, "hydra.run.dir=ref", cwd=tmp_path, env=_env())
    assert ref.returncode == 0, ref.stderr
    calls.unlink()

    proc = _start(args, "hydra.run.dir=killed", cwd=tmp_path)
    state = tmp_path / "killed" / "state"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(state.glob("*.json"))) < 2:
        time.sleep(0.05)
    time.sleep(0.5)  # into the third song's separation
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(list(state.glob("*.json"))) in (2, 3)

    again = run_process(*args, "hydra.run.dir=killed", cwd=tmp_path, env=_env())
    assert again.returncode == 0, again.stderr
    assert "already complete" in again.stderr
    for name in store.TABLES:
        pd.testing.assert_frame_equal(
            _table(tmp_path / "ref", name), _table(tmp_path / "killed", name)
        )
    leftovers = [p for p in (tmp_path / "killed").rglob("*") if ".tmp-" in p.name]
    assert leftovers == []
    manifest = pq.read_table(tmp_path / "killed" / "manifest.parquet").to_pandas()
    assert (manifest.status == "ok").all() and len(manifest) == 4


def test_resume_with_another_config_is_refused(cli, collection, tmp_path) -> None:
    song = collection / "d" / "last.wav"
    first = cli(f"song={song}", "stems=0", "transcriber=none", f"hydra.run.dir={tmp_path}")
    assert first.code == 0
    again = cli(
        f"song={song}",
        "stems=0",
        "transcriber=none",
        "analysis_sr=16000",
        f"hydra.run.dir={tmp_path}",
    )
    assert again.code == 2 and "config error: hydra.run.dir=" in again.err


def test_multirun_two_jobs_with_summary(collection, tmp_path) -> None:
    song = collection / "d" / "last.wav"
    res = run_process(
        "-m",
        f"song={song}",
        "stems=0",
        "transcriber=none",
        "analysis_sr=16000,22050",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
        env=_env(),
    )
    assert res.returncode == 0, res.stderr
    summary = pd.read_parquet(tmp_path / "sweep" / "sweep_summary.parquet")
    assert sorted(summary.analysis_sr) == ["16000", "22050"]
    assert (summary.status == "ok").all() and (summary.songs == 1).all()
    bars = read_sweep(tmp_path / "sweep", "bar_features")
    assert set(bars.analysis_sr) == {"16000", "22050"} and set(bars.job) == {"0", "1"}
    # Rolloff cannot exceed Nyquist of each job's analysis rate.
    assert bars[bars.analysis_sr == "16000"].spectral_rolloff_hz.max() <= 8000


def _default_sigint() -> None:
    """A terminal's child handles Ctrl-C; a background job's would inherit 'ignore'."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_cleanly(collection, tmp_path) -> None:
    calls = tmp_path / "calls.txt"
    args = [
        f"song={collection}",
        "separator._target_=helpers.SlowSeparator",
        f"+separator.log_file={calls}",
        "+separator.delay_s=2.0",
        "transcriber=none",
        "cache.enabled=false",
        "runner.n_jobs=2",
        "hydra.run.dir=run",
    ]
    proc = _start(
        args,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    state = tmp_path / "run" / "state"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(state.glob("*.json")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().endswith("didactic: interrupted")
    manifest = pq.read_table(tmp_path / "run" / "manifest.parquet").to_pandas()
    assert len(manifest) == 4 and (manifest.status == "ok").sum() >= 1
    assert set(manifest.status) <= {"ok", "pending"}
    assert [p for p in (tmp_path / "run").rglob("*") if ".tmp-" in p.name] == []
    # No worker is left running.
    time.sleep(1)
    ps = subprocess.run(
        ["ps", "-o", "pid,args", "-g", str(proc.pid)], capture_output=True, text=True
    )
    # Zombies (<defunct>) are dead already; they wait for init to reap them.
    alive = [line for line in ps.stdout.strip().splitlines()[1:] if "<defunct>" not in line]
    assert alive == []


def test_sigkill_at_several_points_then_resume(collection, tmp_path) -> None:
    """Kill the run just after a song finished plus 0.05 or 0.4 s: into the next song's load,
    rhythm, features or table writing. Every resume continues; the end matches a clean run."""
    args = ["song=" + str(collection), "stems=0", "cache.enabled=false", "chunks.enabled=true"]
    ref = run_process(*args, "hydra.run.dir=ref", cwd=tmp_path, env=_env())
    assert ref.returncode == 0, ref.stderr
    state = tmp_path / "k" / "state"
    for offset in (0.05, 0.4):
        before = len(list(state.glob("*.json"))) if state.is_dir() else 0
        proc = _start(args, "hydra.run.dir=k", cwd=tmp_path)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(state.glob("*.json"))) > before:
                time.sleep(offset)
                break
            time.sleep(0.01)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    final = run_process(*args, "hydra.run.dir=k", cwd=tmp_path, env=_env())
    assert final.returncode == 0, final.stderr
    for name in store.TABLES:
        pd.testing.assert_frame_equal(_table(tmp_path / "ref", name), _table(tmp_path / "k", name))
    ref_files = sorted(
        p.relative_to(tmp_path / "ref") for p in (tmp_path / "ref" / "songs").rglob("*")
    )
    k_files = sorted(p.relative_to(tmp_path / "k") for p in (tmp_path / "k" / "songs").rglob("*"))
    assert ref_files == k_files  # chunks, MIDI: nothing lost, nothing extra
    assert [p for p in (tmp_path / "k").rglob("*") if ".tmp-" in p.name] == []
