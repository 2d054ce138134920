"""Every validated config field: a bad value exits 2 with one line naming key, value and rule."""

from __future__ import annotations

import pytest

from didactic.cli import demo_path

DEMO = demo_path("demo.flac")

# (overrides, key named in the message, value named in the message)
BAD_VALUES = [
    (["stems=5"], "stems", "5"),
    (["stems=abc"], "stems", "abc"),
    (["analysis_sr=4000"], "analysis_sr", "4000"),
    (["analysis_sr=abc"], "analysis_sr", "abc"),
    (["analysis_sr=300000"], "analysis_sr", "300000"),
    (["hop_length=0"], "hop_length", "0"),
    (["hop_length=1.5"], "hop_length", "1.5"),
    (["time_signature=4/3"], "time_signature", "4/3"),
    (["time_signature=waltz"], "time_signature", "waltz"),
    (["time_signature=0/4"], "time_signature", "0/4"),
    (["device=tpu"], "device", "tpu"),
    (["seed=-1"], "seed", "-1"),
    (["separator.timeout_s=0"], "separator.timeout_s", "0"),
    (["separator.shifts=-1"], "separator.shifts", "-1"),
    (["separator.overlap=1.5"], "separator.overlap", "1.5"),
    (["separator.segment=0.5"], "separator.segment", "0.5"),
    (["separator.repo=/no/such/folder"], "separator.repo", "/no/such/folder"),
    (["separator=none", "stems=4"], "stems", "4"),
    (["separator=bogus"], "separator", "bogus"),
    (["rhythm.start_bpm=5"], "rhythm.start_bpm", "5"),
    (["rhythm.tightness=0"], "rhythm.tightness", "0"),
    (["rhythm.bpm_range=[200,100]"], "rhythm.bpm_range", "200"),
    (["rhythm.bpm_range=[60]"], "rhythm.bpm_range", "60"),
    (["rhythm.snap_window_s=1"], "rhythm.snap_window_s", "1"),
    (["rhythm.reanchor_cost=-1"], "rhythm.reanchor_cost", "-1"),
    (["task=train"], "task", "train"),
    (["features.n_fft=16"], "features.n_fft", "16"),
    (["features.n_fft=256"], "features.n_fft", "256"),
    (["features.n_mels=2"], "features.n_mels", "2"),
    (["features.n_mfcc=0"], "features.n_mfcc", "0"),
    (["features.rolloff_percent=1.5"], "features.rolloff_percent", "1.5"),
    (["features.contrast_bands=0"], "features.contrast_bands", "0"),
    (["features.contrast_bands=9"], "features.contrast_bands", "9"),
    (["features.contrast_fmin=0"], "features.contrast_fmin", "0"),
    (["transcriber.timeout_s=0"], "transcriber.timeout_s", "0"),
    (["transcriber.onset_threshold=1.5"], "transcriber.onset_threshold", "1.5"),
    (["transcriber.frame_threshold=0"], "transcriber.frame_threshold", "0"),
    (["transcriber.minimum_note_length_ms=0"], "transcriber.minimum_note_length_ms", "0"),
    (["transcriber.minimum_frequency=-1"], "transcriber.minimum_frequency", "-1"),
    (["transcriber.maximum_frequency=50000"], "transcriber.maximum_frequency", "50000"),
    (
        ["transcriber.minimum_frequency=500", "transcriber.maximum_frequency=100"],
        "transcriber.maximum_frequency",
        "100",
    ),
    (["transcriber.melodia_trick=maybe"], "transcriber.melodia_trick", "maybe"),
    (["transcriber=bogus"], "transcriber", "bogus"),
    (["align.grid=1/7"], "align.grid", "1/7"),
    (["align.grid=sixteenth"], "align.grid", "sixteenth"),
    (["time_signature=6/8", "align.grid=1/32"], None, None),  # valid: 12 steps a beat
    (["time_signature=auto"], None, None),
    (["time_signature=AUTO", "align.grid=1/12"], "align.grid", "1/12"),  # 6/8 is possible
    (["output.audio_subtype=MP3"], "output.audio_subtype", "MP3"),
    (["chunks.enabled=maybe"], "chunks.enabled", "maybe"),
    (["separator.timeout_per_audio_minute_s=-1"], "separator.timeout_per_audio_minute_s", "-1"),
    (
        ["transcriber.timeout_per_audio_minute_s=-1"],
        "transcriber.timeout_per_audio_minute_s",
        "-1",
    ),
    (["transcriber.skip_stems=drums"], "transcriber.skip_stems", "drums"),
    (["chunks.preserve=maybe"], "chunks.preserve", "maybe"),
    (["output.write_stems=maybe"], "output.write_stems", "maybe"),
    (["runner.n_jobs=0"], "runner.n_jobs", "0"),
    (["runner.threads_per_job=0"], "runner.threads_per_job", "0"),
    (["runner.max_failures=0"], "runner.max_failures", "0"),
    (["runner.breaker_failures=0"], "runner.breaker_failures", "0"),
    (["runner.progress=fancy"], "runner.progress", "fancy"),
    (["runner=bogus"], "runner", "bogus"),
    (["cache.enabled=maybe"], "cache.enabled", "maybe"),
    (["paths.cache_dir=[1,2]"], "paths.cache_dir", "1"),
    (["no_such_key=1"], "no_such_key", "1"),
    (["separator.no_such_key=1"], "separator.no_such_key", "1"),
]


@pytest.mark.parametrize(("overrides", "key", "value"), BAD_VALUES, ids=lambda x: str(x))
def test_bad_value_exits_2_with_one_line(cli, tmp_path, overrides, key, value) -> None:
    if key is None:
        res = cli(f"song={DEMO}", *overrides, "--cfg", "job")
        assert res.code == 0, res.err
        return
    res = cli(f"song={DEMO}", *overrides, f"hydra.run.dir={tmp_path / 'run'}")
    assert res.code == 2, (res.code, res.err)
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, res.err
    assert lines[0].startswith(f"didactic: config error: {key}="), lines[0]
    assert value in lines[0]
    assert "Traceback" not in res.err and res.out == ""
    # No work was done: no tables or song outputs.
    assert not (tmp_path / "run" / "tables").exists()


def test_missing_song(cli, tmp_path) -> None:
    res = cli(f"hydra.run.dir={tmp_path}")
    assert res.code == 2
    assert res.err.strip() == "didactic: config error: song='???': a value (it has no default)"


def test_song_that_does_not_exist(cli, tmp_path) -> None:
    res = cli("song=no_such_song.wav", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert res.code == 2
    assert "song='no_such_song.wav'" in res.err and str(tmp_path) in res.err
    assert len(res.err.strip().splitlines()) == 1


def test_cfg_job_shows_composed_config(cli) -> None:
    res = cli("song=foo.wav", "stems=4", "analysis_sr=16000", "--cfg", "job")
    assert res.code == 0
    assert "analysis_sr: 16000" in res.out
    assert "_target_: didactic.stages.separate.DemucsSeparator" in res.out
    assert "_target_: didactic.stages.transcribe.BasicPitchTranscriber" in res.out


def test_missing_demucs_weights_stop_before_work(cli, tmp_path) -> None:
    empty = tmp_path / "weights"
    empty.mkdir()
    res = cli(f"song={DEMO}", f"separator.repo={empty}", f"hydra.run.dir={tmp_path / 'run'}")
    assert res.code == 2
    line = res.err.strip()
    assert line.startswith("didactic: config error: separator.model='htdemucs'")
    assert "separator.repo=FOLDER" in line and len(line.splitlines()) == 1
    assert not (tmp_path / "run" / "tables").exists()
