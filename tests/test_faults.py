"""Hung and crashing stages: the worker is really stopped and replaced, the run goes on."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from didactic.synth import SongSpec, render_song, write_song


@pytest.fixture(scope="module")
def three_songs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faulty")
    for i, name in enumerate(("a_first", "b_hang_crash", "c_last")):
        write_song(render_song(SongSpec(tempo_bpm=100 + 10 * i, n_bars=3, seed=i)), root, name)
    return root


def _manifest(run_dir: Path):
    return pq.read_table(run_dir / "manifest.parquet").to_pandas().set_index("song_id")


def test_hung_separator_times_out_and_next_song_completes(cli, three_songs, tmp_path) -> None:
    t0 = time.monotonic()
    res = cli(
        f"song={three_songs}",
        "separator._target_=helpers.HangingSeparator",
        f"+separator.log_file={tmp_path / 'calls'}",
        "separator.timeout_s=3",
        "transcriber=none",
        "cache.enabled=false",
        f"hydra.run.dir={tmp_path / 'r'}",
    )
    wall = time.monotonic() - t0
    assert res.code == 1, res.err
    m = _manifest(tmp_path / "r")
    assert m.loc["b_hang_crash", "status"] == "failed"
    assert m.loc["b_hang_crash", "error_type"] == "StageTimeout"
    assert m.loc["b_hang_crash", "stage"] == "separate"
    assert "timeout of 3 s" in m.loc["b_hang_crash", "message"]
    # It was stopped at its deadline (3 s + polling), not left running.
    assert m.loc["b_hang_crash", "seconds"] < 3 + 5
    assert m.loc["a_first", "status"] == "ok" and m.loc["c_last", "status"] == "ok"
    assert not (tmp_path / "r" / "songs" / "b_hang_crash").exists()
    print(f"run with one hung song: {wall:.1f} s")


def test_hung_transcriber_times_out(cli, three_songs, tmp_path) -> None:
    res = cli(
        f"song={three_songs / 'c_last.wav'}",
        "stems=0",
        "transcriber._target_=helpers.HangingTranscriber",
        "transcriber.timeout_s=2",
        "cache.enabled=false",
        f"hydra.run.dir={tmp_path / 'r'}",
    )
    assert res.code == 1
    m = _manifest(tmp_path / "r")
    assert m.loc["c_last", "error_type"] == "StageTimeout"
    assert m.loc["c_last", "stage"] == "transcribe"


def test_crashing_worker_is_replaced(cli, three_songs, tmp_path) -> None:
    res = cli(
        f"song={three_songs}",
        "separator._target_=helpers.CrashingSeparator",
        f"+separator.log_file={tmp_path / 'calls'}",
        "transcriber=none",
        "cache.enabled=false",
        f"hydra.run.dir={tmp_path / 'r'}",
    )
    assert res.code == 1
    m = _manifest(tmp_path / "r")
    assert m.loc["b_hang_crash", "error_type"] == "WorkerDied"
    assert (m.drop(index="b_hang_crash").status == "ok").all()


def test_circuit_breaker_skips_the_rest_after_consecutive_failures(cli, tmp_path) -> None:
    songs = tmp_path / "songs"
    for i in range(6):
        write_song(render_song(SongSpec(n_bars=2, seed=i)), songs, f"s{i}")
    calls = tmp_path / "calls"
    res = cli(
        f"song={songs}",
        "separator._target_=helpers.FailingSeparator",
        f"+separator.log_file={calls}",
        "runner.breaker_failures=3",
        "transcriber=none",
        "cache.enabled=false",
        f"hydra.run.dir={tmp_path / 'r'}",
    )
    assert res.code == 1
    m = _manifest(tmp_path / "r")
    assert (m.status == "failed").sum() == 3 and (m.status == "skipped").sum() == 3
    failed = m[m.status == "failed"]
    assert set(failed.stage) == {"separate"} and set(failed.error_type) == {"RuntimeError"}
    skipped = m[m.status == "skipped"]
    assert set(skipped.error_type) == {"CircuitOpen"}
    assert "failed 3 songs in a row" in skipped.message.iloc[0]
    assert len(calls.read_text().splitlines()) == 3  # the broken model was not called again
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert info["circuit_breakers"]["open"] == "separate" and info["songs_skipped"] == 3
