"""The whole job, run as a user runs it, checked against the truth of rendered songs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pretty_midi
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from conftest import run_process

from didactic import store
from didactic.cli import demo_path
from didactic.synth import load_truth


def _tables(run_dir: Path) -> dict:
    return {t: ds.dataset(run_dir / "tables" / t).to_table() for t in store.TABLES}


def _check_schemas(tables: dict, n_mfcc: int = 13, bands: int = 6) -> None:
    expected = {
        "songs": store.SONGS_SCHEMA,
        "beats": store.BEATS_SCHEMA,
        "bars": store.BARS_SCHEMA,
        "bar_features": store.bar_features_schema(n_mfcc, bands),
        "notes": store.NOTES_SCHEMA,
    }
    for name, table in tables.items():
        assert table.schema.remove_metadata().equals(expected[name]), name


@pytest.fixture(scope="module")
def mix_run(make_song, tmp_path_factory):
    """stems=0 on a rendered stereo WAV, started from another folder with a relative path."""
    files = make_song("take one", tempo_bpm=120.0, n_bars=8, leading_silence_s=0.5, seed=3)
    cwd = files.folder
    res = run_process("song=take one.wav", "stems=0", "hydra.run.dir=out/a", cwd=cwd)
    assert res.returncode == 0, res.stderr
    return files, cwd / "out" / "a", res


def test_stems0_run_writes_every_table_and_file(mix_run) -> None:
    files, run_dir, res = mix_run
    assert res.stdout.strip().endswith(f"results in {run_dir}")
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "didactic.log").read_text().count("song take_one") >= 1
    tables = _tables(run_dir)
    _check_schemas(tables)
    song = tables["songs"].to_pylist()[0]
    assert song["song_id"] == "take_one" and song["stems"] == ["mix"]
    assert song["sample_rate"] == 44100 and song["channels"] == 2
    assert song["duration_s"] == pytest.approx(files.song.duration_s)
    assert song["tempo_bpm"] == pytest.approx(120.0, rel=0.02)
    assert song["content_hash"] and len(song["content_hash"]) == 64

    bars = tables["bars"].to_pandas()
    assert bars.bar_index.tolist() == list(range(len(bars)))  # bar 0 = the 0.5 s of silence
    assert bars.end_s.iloc[0] == pytest.approx(0.5, abs=0.05) and bars.n_beats.iloc[0] == 0
    np.testing.assert_allclose(bars.start_s.iloc[1:9], files.song.downbeat_times, atol=0.05)
    assert bars.end_s.iloc[-1] == pytest.approx(files.song.duration_s)

    feats = tables["bar_features"].to_pandas()
    assert set(feats.stem) == {"mix"} and len(feats) == len(bars)
    # Bar 0 is the leading silence (its end may fall a few ms before the first attack).
    assert feats.loudness_dbfs.iloc[0] < -60 and feats.loudness_dbfs.iloc[1] > -30

    notes = tables["notes"].to_pandas()
    assert set(notes.stem) == {"mix"} and len(notes) > 20
    assert (notes.bar_index >= 0).all() and notes.bar_index.max() <= bars.bar_index.max()
    midi = pretty_midi.PrettyMIDI(str(run_dir / "songs" / "take_one" / "midi" / "mix.mid"))
    assert len(midi.instruments[0].notes) == len(notes)

    meta = pq.read_schema(run_dir / "tables" / "bars" / "take_one.parquet").metadata
    assert b"didactic.config_fingerprint" in meta and b"didactic.versions" in meta
    info = json.loads((run_dir / "run.json").read_text())
    assert info["songs_ok"] == 1 and info["songs"][0]["content_hash"] == song["content_hash"]
    assert set(info["songs"][0]["seconds"]) >= {"load", "separate", "rhythm", "features", "store"}
    manifest = pq.read_table(run_dir / "manifest.parquet").to_pylist()
    assert manifest[0]["status"] == "ok" and manifest[0]["song_id"] == "take_one"
    # Nothing half-written is left behind.
    assert not [p for p in run_dir.rglob(".*") if p.is_file() and ".tmp-" in p.name]


def test_same_config_same_input_same_tables(mix_run, cli) -> None:
    files, run_dir, _ = mix_run
    res = cli("song=take one.wav", "stems=0", "hydra.run.dir=out/b", cwd=files.folder)
    assert res.code == 0, res.err
    first, second = _tables(run_dir), _tables(files.folder / "out" / "b")
    for name in store.TABLES:
        assert first[name].equals(second[name]), name


def test_notes_sit_in_their_true_bars_on_the_demo(cli, tmp_path) -> None:
    """The bundled demo (precomputed true stems): notes of each stem land in the right bar."""
    res = cli("+experiment=demo", f"hydra.run.dir={tmp_path}")
    assert res.code == 0, res.err
    truth = load_truth(demo_path("demo.truth.json"))
    tables = _tables(tmp_path)
    bars = tables["bars"].to_pandas()
    first_bar = 1 if bars.bar_index.iloc[0] == 1 else 0
    np.testing.assert_allclose(
        bars.start_s.iloc[1 - first_bar : 1 - first_bar + len(truth["downbeat_times"])][1:],
        truth["downbeat_times"][1:],
        atol=0.05,
    )
    notes = tables["notes"].to_pandas()
    assert set(notes.stem) == {"bass", "other", "vocals"}
    down = truth["downbeat_times"]
    for stem in ("bass", "vocals"):
        ref = truth["notes"][stem]
        est = notes[notes.stem == stem]
        found = right = right_q = 0
        for n in ref:
            true_bar = int(np.searchsorted(down, n.start_s, side="right"))  # bar 1 from down[0]
            match = est[(est.pitch == n.pitch) & (abs(est.start_s - n.start_s) < 0.05)]
            if len(match):
                found += 1
                right += int(match.bar_index.iloc[0] == true_bar)
                right_q += int(match.bar_index_q.iloc[0] == true_bar)
        assert found / len(ref) >= 0.85, f"{stem}: Basic Pitch found {found}/{len(ref)} notes"
        # A transcribed onset a few ms before its downbeat lies, by time, in the bar before;
        # on the grid (quantized) it is on the downbeat.
        assert right_q == found, f"{stem}: {found - right_q} of {found} notes in the wrong bar"
        assert right / found >= 0.9, f"{stem}: {found - right} of {found} onsets before their bar"
    combined = pretty_midi.PrettyMIDI(str(tmp_path / "songs" / "demo" / "midi" / "all.mid"))
    assert sorted(i.name for i in combined.instruments) == ["bass", "other", "vocals"]
    bar_lines = combined.get_downbeats()
    for t in bars.start_s[bars.bar_index >= 1]:
        assert np.min(np.abs(bar_lines - t)) < 0.002
    chunks = sorted((tmp_path / "songs" / "demo" / "chunks" / "bass").glob("bar_*.wav"))
    assert len(chunks) == len(bars)


def test_demucs_tiny_model_four_stems_end_to_end(
    cli, make_song, tiny_demucs_repo, tmp_path
) -> None:
    files = make_song("dm", tempo_bpm=110.0, n_bars=4, seed=4)
    res = cli(
        f"song={files.mix}",
        "separator=demucs",
        f"separator.repo={tiny_demucs_repo}",
        "stems=4",
        "transcriber.skip_stems=[]",
        f"hydra.run.dir={tmp_path}",
    )
    assert res.code == 0, res.err
    stems = ["bass", "drums", "other", "vocals"]
    stem_files = sorted((tmp_path / "songs" / "dm" / "stems").glob("*.wav"))
    assert [p.stem for p in stem_files] == stems
    for p in stem_files:
        info = sf.info(p)
        assert info.samplerate == 44100 and info.frames == files.song.mix.shape[1]
    tables = _tables(tmp_path)
    assert sorted(tables["songs"].column("stems")[0].as_py()) == stems
    assert sorted(set(tables["bar_features"].column("stem").to_pylist())) == stems
    midi = sorted(p.stem for p in (tmp_path / "songs" / "dm" / "midi").glob("*.mid"))
    assert midi == ["all", *stems]
    combined = pretty_midi.PrettyMIDI(str(tmp_path / "songs" / "dm" / "midi" / "all.mid"))
    assert [i.is_drum for i in combined.instruments if i.name == "drums"] == [True]
    assert "loaded Demucs model htdemucs" in (tmp_path / "didactic.log").read_text()


@pytest.mark.parametrize(
    ("stems", "names"),
    [
        (2, ["accompaniment", "vocals"]),
        (6, ["bass", "drums", "guitar", "other", "piano", "vocals"]),
    ],
)
def test_demucs_two_and_six_stems(cli, make_song, tiny_demucs_repo, tmp_path, stems, names) -> None:
    files = make_song("dm", tempo_bpm=110.0, n_bars=4, seed=4)
    res = cli(
        f"song={files.mix}",
        f"separator.repo={tiny_demucs_repo}",
        f"stems={stems}",
        "transcriber=none",
        f"hydra.run.dir={tmp_path}",
    )
    assert res.code == 0, res.err
    tables = _tables(tmp_path)
    assert sorted(set(tables["bar_features"].column("stem").to_pylist())) == names
    assert tables["notes"].num_rows == 0 and not (tmp_path / "songs" / "dm" / "midi").exists()


@pytest.mark.parametrize("preserve", [True, False])
def test_chunks_native_or_analysis_rate(cli, make_song, tmp_path, preserve) -> None:
    files = make_song("ch", tempo_bpm=120.0, n_bars=4, sr=48000, channels=2, seed=6)
    res = cli(
        f"song={files.mix}",
        "stems=0",
        "transcriber=none",
        "chunks.enabled=true",
        f"chunks.preserve={str(preserve).lower()}",
        "analysis_sr=16000",
        f"hydra.run.dir={tmp_path}",
    )
    assert res.code == 0, res.err
    chunks = sorted((tmp_path / "songs" / "ch" / "chunks" / "mix").glob("bar_*.wav"))
    feats = _tables(tmp_path)["bar_features"].to_pandas()
    assert len(chunks) == len(feats)
    assert feats.chunk_path.tolist() == [str(p.relative_to(tmp_path)) for p in chunks]
    infos = [sf.info(p) for p in chunks]
    sr, ch = (48000, 2) if preserve else (16000, 1)
    assert {i.samplerate for i in infos} == {sr} and {i.channels for i in infos} == {ch}
    total = sum(i.frames for i in infos)
    assert total == (files.song.mix.shape[1] if preserve else round(files.song.mix.shape[1] / 3))
    # Features are computed at analysis_sr mono either way.
    assert feats.spectral_rolloff_hz.max() <= 8000
