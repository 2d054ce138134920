"""The bad-input catalogue, and the many kinds of good input, each in one batch run."""

from __future__ import annotations

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from didactic.synth import SongSpec, render_song

SR = 22050


def _music(sr: int = SR, channels: int = 2, bars: int = 4) -> np.ndarray:
    return render_song(SongSpec(tempo_bpm=120, n_bars=bars, sr=sr, channels=channels, seed=1)).mix.T


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory, cli_module):
    root = tmp_path_factory.mktemp("bad")
    songs = root / "songs"
    songs.mkdir()
    (songs / "text.wav").write_text("this is a text file")
    (songs / "zero_length.wav").write_bytes(b"")
    sf.write(songs / "good.wav", _music(), SR)
    (songs / "truncated.wav").write_bytes((songs / "good.wav").read_bytes()[:30])
    sf.write(songs / "zeros.wav", np.zeros(SR * 5), SR)
    for name, bad in (("nan", np.nan), ("inf", np.inf)):
        x = np.zeros(SR * 5, np.float32)
        x[100] = bad
        sf.write(songs / f"{name}.wav", x, SR, subtype="FLOAT")
    sf.write(songs / "short.wav", _music()[: int(SR * 0.6)], SR)
    rng = np.random.default_rng(0)
    sf.write(songs / "noise.wav", 0.3 * rng.standard_normal(SR * 10), SR)
    t = np.arange(SR * 10) / SR
    sf.write(songs / "tone.wav", 0.5 * np.sin(2 * np.pi * 440 * t), SR)
    (root / "empty").mkdir()
    res = cli_module(f"song={songs}", "stems=0", "transcriber=none", f"hydra.run.dir={root / 'r'}")
    manifest = pq.read_table(root / "r" / "manifest.parquet").to_pandas().set_index("song_id")
    return root, res, manifest


# song id -> (stage, error type, words in the message)
CATALOGUE = {
    "text": ("load", "AudioError", "not a readable audio file"),
    "zero_length": ("load", "AudioError", "not a readable audio file"),
    "truncated": ("load", "AudioError", "not a readable audio file"),
    "nan": ("load", "AudioError", "NaN or Inf"),
    "inf": ("load", "AudioError", "NaN or Inf"),
    "zeros": ("rhythm", "StageError", "no detectable beat"),
    "short": ("rhythm", "AudioError", "shorter than one bar"),
    "noise": ("rhythm", "StageError", "no detectable beat"),
    "tone": ("rhythm", "StageError", "no detectable beat"),
}


@pytest.mark.parametrize("song_id", sorted(CATALOGUE))
def test_bad_file_fails_alone_with_its_reason(bad_run, song_id: str) -> None:
    root, _, manifest = bad_run
    stage, error_type, words = CATALOGUE[song_id]
    row = manifest.loc[song_id]
    assert (row.status, row.stage, row.error_type) == ("failed", stage, error_type)
    assert words in row.message and f"{song_id}.wav" in row.message
    assert "\n" not in row.message
    assert not (root / "r" / "songs" / song_id).exists()


def test_the_good_song_among_them_is_complete(bad_run) -> None:
    root, res, manifest = bad_run
    assert res.code == 1 and "Traceback" not in res.err
    assert "song text failed in load" in res.err  # the run's log, on stderr
    assert manifest.loc["good", "status"] == "ok"
    assert ds.dataset(root / "r" / "tables" / "songs").to_table().column("song_id").to_pylist() == [
        "good"
    ]


def test_missing_path_and_empty_folder_are_config_errors(cli, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    for value in ("nowhere.wav", "empty"):
        res = cli(f"song={value}", f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
        assert res.code == 2 and res.err.startswith(f"didactic: config error: song='{value}'")


def test_every_kind_of_good_input(cli, tmp_path) -> None:
    songs = tmp_path / "good songs"
    songs.mkdir()
    cases = {
        "pcm 8 bit": dict(subtype="PCM_U8"),
        "pcm 16 bit": dict(subtype="PCM_16"),
        "pcm 24 bit": dict(subtype="PCM_24"),
        "float 32": dict(subtype="FLOAT"),
        "mono": dict(channels=1),
        "six channels": dict(channels=6),
        "rate 8k": dict(sr=8000),
        "rate 192k": dict(sr=192000),
        "Ünïcödé ßong": dict(),
    }
    for name, opts in cases.items():
        sr, ch = opts.get("sr", SR), opts.get("channels", 2)
        x = _music(sr=sr, channels=min(ch, 2), bars=3)
        if ch == 6:
            x = np.concatenate([x, x, x], axis=1) * 0.5
        sf.write(songs / f"{name}.wav", x, sr, subtype=opts.get("subtype", "PCM_16"))
    for fmt, ext in (("FLAC", "flac"), ("OGG", "ogg"), ("MP3", "mp3")):
        sf.write(songs / f"compressed.{ext}", _music(bars=3), SR, format=fmt)
    res = cli(
        f"song={songs}",
        "stems=0",
        "transcriber=none",
        "analysis_sr=16000",
        f"hydra.run.dir={tmp_path / 'r'}",
    )
    manifest = pq.read_table(tmp_path / "r" / "manifest.parquet").to_pandas()
    assert res.code == 0, manifest[manifest.status != "ok"].to_string()
    songs_t = ds.dataset(tmp_path / "r" / "tables" / "songs").to_table().to_pandas()
    by_id = songs_t.set_index("song_id")
    assert by_id.loc["six_channels", "channels"] == 6 and by_id.loc["mono", "channels"] == 1
    assert by_id.loc["rate_192k", "sample_rate"] == 192000
    assert by_id.loc["rate_8k", "sample_rate"] == 8000
    assert "Ünïcödé_ßong" in by_id.index
    # Every one of them finds the same 120 BPM grid.
    assert np.allclose(songs_t.tempo_bpm, 120, rtol=0.03), songs_t[["song_id", "tempo_bpm"]]


def test_precomputed_stems_missing_short_or_other_rate(cli, tmp_path) -> None:
    songs = tmp_path / "songs"
    songs.mkdir()
    mix = _music(bars=3)
    for name in ("fine", "no_stems", "short_stem", "other_rate"):
        sf.write(songs / f"{name}.wav", mix, SR)
        if name == "no_stems":
            continue
        stems = songs / f"{name}_stems"
        stems.mkdir()
        sf.write(stems / "bass.wav", mix * 0.5, SR)
        if name == "short_stem":
            sf.write(stems / "drums.wav", mix[:-100] * 0.5, SR)
        elif name == "other_rate":
            sf.write(stems / "drums.wav", mix * 0.5, 16000)
        else:
            sf.write(stems / "drums.wav", mix * 0.5, SR)
    res = cli(
        f"song={songs}",
        "separator=precomputed",
        "transcriber=none",
        f"hydra.run.dir={tmp_path / 'r'}",
    )
    assert res.code == 1
    m = pq.read_table(tmp_path / "r" / "manifest.parquet").to_pandas().set_index("song_id")
    assert m.loc["fine", "status"] == "ok"
    assert (
        "stems folder" in m.loc["no_stems", "message"]
        and "does not exist" in m.loc["no_stems", "message"]
    )
    assert (
        "samples at" in m.loc["short_stem", "message"]
        and "drums.wav" in m.loc["short_stem", "message"]
    )
    assert "16000 Hz" in m.loc["other_rate", "message"]
    assert set(m.loc[["no_stems", "short_stem", "other_rate"], "stage"]) == {"separate"}
