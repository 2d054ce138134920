"""Tests of didactic.evaluate and didactic.evalset against songs whose truth is exact.

Run directories are written here the way the pipeline writes them (didactic's own schemas,
``store.to_table``/``write_table``, notes placed by ``align_notes``), from the synth's truth
or from deliberately wrong versions of it, so every expected score is known in advance.
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass, fields
from pathlib import Path

import mir_eval
import numpy as np
import pandas as pd
import pytest

from didactic import store
from didactic.config import EvaluateConf, TimeSignature, grid_steps_per_beat
from didactic.errors import ConfigError
from didactic.evalset import (
    COMPOUND_METERS,
    METERS,
    SIMPLE_METERS,
    beat_positions,
    sample_specs,
    song_name,
    tempo_range,
    write_eval_set,
)
from didactic.evaluate import evaluate_run
from didactic.grid import BeatGrid
from didactic.pipeline import grid_tables
from didactic.reference import load_reference
from didactic.songs import slug
from didactic.stages.align import align_notes
from didactic.stages.transcribe import Notes
from didactic.synth import Note, SongSpec, beat_grid, load_truth

STEMS = ["drums", "bass", "other", "vocals"]
PITCHED = ("bass", "other", "vocals")
SPECS = [
    SongSpec(tempo_bpm=120.0, n_bars=4, sr=22050, channels=1, seed=1),
    SongSpec(
        tempo_bpm=110.0, n_bars=4, pickup_beats=2, leading_silence_s=0.3, sr=22050, channels=1
    ),
    SongSpec(tempo_bpm=90.0, time_signature="3/4", n_bars=4, pickup_beats=1, sr=22050, channels=1),
]
A, B, C = (song_name(i, s) for i, s in enumerate(SPECS))


@dataclass
class Truth:
    """What the synth says about a written song."""

    name: str
    path: Path
    beat_times: np.ndarray
    downbeat_times: np.ndarray
    duration_s: float
    time_signature: str
    notes: dict[str, list[Note]]

    @property
    def downbeats(self) -> np.ndarray:
        idx = np.searchsorted(self.beat_times, self.downbeat_times)
        np.testing.assert_allclose(self.beat_times[idx], self.downbeat_times)
        return idx

    def pitched_onsets(self) -> np.ndarray:
        return np.array([n.start_s for s in PITCHED for n in self.notes[s]])


def truth_of(mix: Path) -> Truth:
    data = load_truth(mix.with_name(f"{mix.stem}.truth.json"))
    return Truth(
        mix.stem,
        mix,
        data["beat_times"],
        data["downbeat_times"],
        data["duration_s"],
        data["spec"].time_signature,
        data["notes"],
    )


def write_song_tables(
    run_dir: Path,
    truth: Truth,
    *,
    beat_times: np.ndarray | None = None,
    downbeats: np.ndarray | None = None,
    tempo_factor: float = 1.0,
    time_signature: str | None = None,
    notes: dict[str, list[Note]] | None = None,
    stems: list[str] = STEMS,
    source_path: Path | None = None,
) -> None:
    """One song's five tables, as the pipeline would write them for this (estimated) grid."""
    meter = TimeSignature.parse(time_signature or truth.time_signature)
    bt = truth.beat_times if beat_times is None else beat_times
    db = truth.downbeats if downbeats is None else downbeats
    grid = BeatGrid(bt, db, truth.duration_s, meter)
    if notes is None:
        notes = {s: truth.notes[s] for s in PITCHED if s in stems}
    sid = slug(truth.name)
    beats, bars = grid_tables(sid, grid)
    cols: dict[str, dict] = {
        "songs": {
            "song_id": [sid],
            "source_path": [str(source_path or truth.path)],
            "content_hash": ["0" * 16],
            "duration_s": [truth.duration_s],
            "sample_rate": [22050],
            "channels": [1],
            "tempo_bpm": [grid.tempo_bpm * tempo_factor],
            "time_signature": [str(meter)],
            "beats_per_bar": [meter.beats_per_bar],
            "n_beats": [grid.n_beats],
            "n_bars": [grid.n_bars],
            "stems": [stems],
        },
        "beats": beats,
        "bars": bars,
        "bar_features": store.empty_columns(store.bar_features_schema()),
    }
    ncols: dict[str, list] = {name: [] for name in store.NOTES_SCHEMA.names}
    steps = grid_steps_per_beat("1/16", meter)
    for stem, lst in notes.items():
        n = Notes.from_events([(x.start_s, x.end_s, x.pitch, x.velocity) for x in lst])
        ncols["song_id"] += [sid] * len(n)
        ncols["stem"] += [stem] * len(n)
        for k in ("pitch", "velocity", "start_s", "end_s"):
            ncols[k] += list(getattr(n, k))
        for k, v in align_notes(n, grid, steps).items():
            ncols[k] += list(v)
    cols["notes"] = ncols
    schemas = {
        "songs": store.SONGS_SCHEMA,
        "beats": store.BEATS_SCHEMA,
        "bars": store.BARS_SCHEMA,
        "bar_features": store.bar_features_schema(),
        "notes": store.NOTES_SCHEMA,
    }
    for table, schema in schemas.items():
        n_rows = len(next(iter(cols[table].values())))
        for f in schema:  # columns this test does not know about (e.g. meter_confidence): null
            cols[table].setdefault(f.name, [math.nan if f.type == "double" else None] * n_rows)
        store.write_table(
            store.to_table(cols[table], schema, {}), store.table_path(run_dir, table, sid)
        )


def evaluate(run_dir: Path, ref_dir: Path, **conf) -> object:
    return evaluate_run(run_dir, ref_dir, run_dir / "eval", EvaluateConf(**conf))


def row(result, song: str, method: str = "didactic") -> dict:
    ev = result.evaluation
    sel = ev[(ev["song_id"] == song) & (ev["method"] == method)]
    assert len(sel) == 1, f"{song}/{method}: {len(sel)} rows"
    return sel.iloc[0].to_dict()


@pytest.fixture(scope="module")
def ref_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("refs")
    write_eval_set(SPECS, folder)
    return folder


@pytest.fixture(scope="module")
def truths(ref_dir: Path) -> dict[str, Truth]:
    return {n: truth_of(ref_dir / f"{n}.flac") for n in (A, B, C)}


@pytest.fixture(scope="module")
def perfect(ref_dir: Path, truths: dict[str, Truth], tmp_path_factory):
    run = tmp_path_factory.mktemp("perfect")
    for t in truths.values():
        write_song_tables(run, t)
    return evaluate(run, ref_dir)


# ---- the grid ---------------------------------------------------------------------------------


def test_perfect_estimate_scores_one(perfect, truths: dict[str, Truth]) -> None:
    assert (perfect.n_songs, perfect.n_skipped) == (3, 0)
    for name, t in truths.items():
        r = row(perfect, name)
        for key in ("beat_f", "cmlt", "amlt", "downbeat_f", "grid_bar_acc", "notes_in_right_bar"):
            assert r[key] == pytest.approx(1.0), (name, key)
        assert r["tempo_acc1"] is True and r["tempo_acc2"] is True
        assert r["meter_correct"] is True
        assert r["ref_time_signature"] == t.time_signature
        assert r["n_ref_notes"] == r["n_matched_notes"] == sum(len(t.notes[s]) for s in PITCHED)
        assert r["n_ref_beats"] == r["n_est_beats"] == t.beat_times.size
    notes = perfect.notes
    assert sorted(notes["stem"].unique()) == sorted(PITCHED)  # drums are not scored
    assert len(notes) == 3 * len(PITCHED)
    for rec in notes.to_dict("records"):
        assert rec["n_ref"] == rec["n_est"] == len(truths[rec["song_id"]].notes[rec["stem"]])
        assert rec["note_f1"] == rec["note_f1_offset"] == rec["precision"] == 1.0


def test_baseline_misses_pickups_and_other_meters(perfect) -> None:
    # 4/4 from beat 0: the naive grid is right...
    base = row(perfect, A, "baseline")
    assert base["downbeat_f"] == 1.0 and base["grid_bar_acc"] == 1.0
    assert base["notes_in_right_bar"] == 1.0 and base["meter_correct"] is True
    # ...two pickup beats put every naive downbeat two beats (1.09 s) off...
    b = row(perfect, B, "baseline")
    assert b["downbeat_f"] == 0.0 and b["grid_bar_acc"] < 0.8
    # (with a perfect transcription, placing the transcribed notes is placing the onsets)
    assert b["notes_in_right_bar"] == pytest.approx(b["grid_bar_acc"])
    # ...and in 3/4 with one pickup beat only beat 4 (of naive 0, 4, 8, 12 and true 1, 4, 7,
    # 10) is a downbeat of both: precision = recall = 1/4.
    c = row(perfect, C, "baseline")
    assert c["downbeat_f"] == pytest.approx(0.25)
    assert c["meter_correct"] is False and c["est_time_signature"] == "4/4"
    # Same beats, same tempo: only the bars differ.
    assert c["beat_f"] == 1.0 and c["tempo_acc1"] is True


def test_downbeats_one_beat_late(ref_dir: Path, truths: dict[str, Truth], tmp_path: Path) -> None:
    t = truths[A]
    write_song_tables(tmp_path, t, downbeats=t.downbeats + 1)
    r = row(evaluate(tmp_path, ref_dir), A)
    assert r["beat_f"] == 1.0
    assert r["downbeat_f"] == 0.0  # 0.5 s off, far outside the 70 ms window
    # All pitched notes start on beats; those on a downbeat now land in the bar before, the
    # others (beats 2-4, still after the shifted bar line) stay in their bar.
    onsets = t.pitched_onsets()
    on_downbeat = np.isclose(onsets[:, None], t.downbeat_times[None, :], atol=1e-6).any(axis=1)
    expected = 1.0 - on_downbeat.mean()
    assert 0.0 < expected < 1.0
    assert r["grid_bar_acc"] == pytest.approx(expected)
    assert r["notes_in_right_bar"] == pytest.approx(expected)


@pytest.mark.parametrize(("late_s", "right"), [(0.02, True), (0.04, True), (0.08, False)])
def test_slightly_late_downbeats_keep_notes_in_their_bar(
    ref_dir: Path, truths: dict[str, Truth], tmp_path: Path, late_s: float, right: bool
) -> None:
    t = truths[A]
    write_song_tables(tmp_path, t, beat_times=t.beat_times + late_s)
    r = row(evaluate(tmp_path, ref_dir), A)
    assert r["beat_f"] == (1.0 if late_s < 0.07 else 0.0)
    assert (r["grid_bar_acc"] == 1.0) is right
    assert (r["notes_in_right_bar"] == 1.0) is right


@pytest.mark.parametrize(
    ("factor", "acc1", "acc2"),
    [(2.0, False, True), (0.5, False, True), (3.0, False, True), (1.03, True, True),
     (1.1, False, False)],
)  # fmt: skip
def test_tempo_accuracy(
    ref_dir: Path, truths: dict[str, Truth], tmp_path: Path, factor: float, acc1: bool, acc2: bool
) -> None:
    write_song_tables(tmp_path, truths[C], tempo_factor=factor)
    r = row(evaluate(tmp_path, ref_dir), C)
    assert r["est_tempo_bpm"] == pytest.approx(90.0 * factor)
    assert r["ref_tempo_bpm"] == pytest.approx(90.0)
    assert (r["tempo_acc1"], r["tempo_acc2"]) == (acc1, acc2)


def test_beat_trim(ref_dir: Path, truths: dict[str, Truth], tmp_path: Path) -> None:
    t = truths[A]  # 16 beats at 0.5 s
    bt = t.beat_times.copy()
    bt[:4] += 0.2  # the first bar's beats 200 ms late: outside the 70 ms window
    write_song_tables(tmp_path, t, beat_times=bt)
    assert row(evaluate(tmp_path, ref_dir), A)["beat_f"] == pytest.approx(12 / 16)
    assert row(evaluate(tmp_path, ref_dir, beat_trim_s=2.0), A)["beat_f"] == 1.0


# ---- notes ------------------------------------------------------------------------------------


def test_note_scores_are_mir_eval_scores(
    ref_dir: Path, truths: dict[str, Truth], tmp_path: Path
) -> None:
    t = truths[A]
    rng = np.random.default_rng(0)
    bass = t.notes["bass"][::2]  # half the notes, all correct: precision 1, recall 1/2
    vocals = []
    for i, n in enumerate(t.notes["vocals"]):
        shift = (0.0, 0.03, 0.1)[i % 3]  # in, in and out of the 50 ms onset window
        end = n.end_s * (1.3 if i % 2 else 1.0)  # every other offset far off
        vocals.append(Note(n.pitch + (1 if i == 4 else 0), n.start_s + shift, end, n.velocity))
    vocals.append(Note(90, 1.23, 1.5, 80))  # a note that is not there
    rng.shuffle(vocals)
    write_song_tables(tmp_path, t, notes={"bass": bass, "other": [], "vocals": vocals})
    res = evaluate(tmp_path, ref_dir)
    notes = res.notes.set_index("stem")
    b = notes.loc["bass"]
    total = len(t.notes["bass"])
    assert (b["n_ref"], b["n_est"], b["n_match"]) == (total, len(bass), len(bass))
    assert b["precision"] == 1.0 and b["recall"] == pytest.approx(len(bass) / total)
    assert b["note_f1"] == pytest.approx(2 * len(bass) / (total + len(bass)))
    assert "other" not in notes.index  # no notes anywhere in the run: not transcribed

    def arrays(lst: list[Note]) -> tuple[np.ndarray, np.ndarray]:
        iv = np.array([[n.start_s, n.end_s] for n in lst])
        return iv, mir_eval.util.midi_to_hz(np.array([n.pitch for n in lst], dtype=float))

    ref_iv, ref_hz = arrays(t.notes["vocals"])
    est_iv, est_hz = arrays(vocals)
    p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref_iv, ref_hz, est_iv, est_hz, offset_ratio=None
    )
    _, _, f_off, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref_iv, ref_hz, est_iv, est_hz, offset_ratio=0.2
    )
    v = notes.loc["vocals"]
    assert 0.0 < f_off < f < 1.0  # the perturbations bite
    assert (v["precision"], v["recall"], v["note_f1"]) == pytest.approx((p, r, f))
    assert v["note_f1_offset"] == pytest.approx(f_off)
    # Pooled over the song's stems: counts summed, scores from the sums.
    s = res.summary.set_index("method").loc["didactic"]
    assert s["n_ref"] == notes["n_ref"].sum() and s["n_match"] == notes["n_match"].sum()
    assert s["note_f1"] == pytest.approx(2 * s["n_match"] / (s["n_ref"] + s["n_est"]))


def test_mix_run_is_scored_on_all_pitched_notes(
    ref_dir: Path, truths: dict[str, Truth], tmp_path: Path
) -> None:
    t = truths[B]
    pooled = [n for s in PITCHED for n in t.notes[s]]
    write_song_tables(tmp_path, t, stems=["mix"], notes={"mix": pooled})
    res = evaluate(tmp_path, ref_dir)
    rec = res.notes.iloc[0].to_dict()
    assert len(res.notes) == 1 and rec["stem"] == "mix"
    assert rec["reference_stems"] == "bass+other+vocals"
    assert rec["n_ref"] == rec["n_est"] == len(pooled) and rec["note_f1"] == 1.0
    assert row(res, B)["notes_in_right_bar"] == 1.0


def test_untranscribed_stems_follow_the_run_config(
    ref_dir: Path, truths: dict[str, Truth], tmp_path: Path
) -> None:
    t = truths[A]
    write_song_tables(tmp_path, t, notes={"vocals": t.notes["vocals"]})
    # Without the run's config: stems without any notes in the run count as not transcribed.
    assert list(evaluate(tmp_path, ref_dir).notes["stem"]) == ["vocals"]
    # With it: bass and other were transcribed and found nothing; drums were skipped.
    hydra = tmp_path / ".hydra"
    hydra.mkdir()
    (hydra / "config.yaml").write_text(
        "transcriber:\n  _target_: didactic.stages.transcribe.BasicPitchTranscriber\n"
        "  skip_stems: [drums]\n"
    )
    notes = evaluate(tmp_path, ref_dir).notes.set_index("stem")
    assert sorted(notes.index) == ["bass", "other", "vocals"]
    bass = notes.loc["bass"]  # transcribed, nothing found: recall and F1 0, precision null
    assert bass["n_est"] == 0 and bass["recall"] == 0.0 and bass["note_f1"] == 0.0
    assert math.isnan(bass["precision"]) and notes.loc["vocals", "note_f1"] == 1.0
    (hydra / "config.yaml").write_text(
        "transcriber:\n  _target_: didactic.stages.transcribe.NoTranscriber\n"
    )
    assert evaluate(tmp_path, ref_dir).notes.empty


# ---- references, errors, outputs --------------------------------------------------------------


def test_without_midi_or_downbeats_the_metrics_are_null(
    ref_dir: Path, truths: dict[str, Truth], tmp_path: Path
) -> None:
    refs = tmp_path / "refs"
    refs.mkdir()
    shutil.copy(ref_dir / f"{A}.beats.txt", refs)  # positions give the downbeats
    t = truths[B]
    (refs / f"{B}.beats.txt").write_text("".join(f"{x:.6f}\n" for x in t.beat_times))
    run = tmp_path / "run"
    write_song_tables(run, truths[A])
    write_song_tables(run, t)
    res = evaluate(run, refs)
    a, b = row(res, A), row(res, B)
    assert a["beat_f"] == 1.0 and a["downbeat_f"] == 1.0
    assert b["beat_f"] == 1.0 and math.isnan(b["downbeat_f"]) and pd.isna(b["n_ref_downbeats"])
    for r in (a, b):
        assert pd.isna(r["meter_correct"]) and pd.isna(r["n_ref_notes"])
        assert math.isnan(r["grid_bar_acc"]) and math.isnan(r["notes_in_right_bar"])
    assert res.notes.empty
    summary = res.summary.set_index("method")
    assert summary.loc["didactic", "beat_f"] == 1.0
    assert math.isnan(summary.loc["didactic", "note_f1"])
    # Nulls in the Parquet file, not zeros.
    back = pd.read_parquet(run / "eval" / "evaluation.parquet")
    assert back["grid_bar_acc"].isna().all() and back["meter_correct"].isna().all()


def test_song_without_reference_is_skipped(
    ref_dir: Path, truths: dict[str, Truth], tmp_path: Path, caplog
) -> None:
    write_song_tables(tmp_path, truths[A])
    ghost = Truth(**{f.name: getattr(truths[C], f.name) for f in fields(Truth)})
    ghost.name = "ghost"
    write_song_tables(tmp_path, ghost, source_path=tmp_path / "elsewhere" / "ghost.flac")
    with caplog.at_level(logging.WARNING, logger="didactic.evaluate"):
        res = evaluate(tmp_path, ref_dir)
    assert (res.n_songs, res.n_skipped) == (1, 1)
    assert set(res.evaluation["song_id"]) == {A}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "ghost" in warnings[0].getMessage()
    assert res.summary.set_index("method").loc["didactic", "n_songs"] == 1


def test_reference_found_by_song_id(
    ref_dir: Path, truths: dict[str, Truth], tmp_path: Path
) -> None:
    # The source file was renamed since the run; the song id still names the reference.
    write_song_tables(tmp_path, truths[A], source_path=tmp_path / "renamed.wav")
    assert row(evaluate(tmp_path, ref_dir), A)["downbeat_f"] == 1.0


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("0.5 1\nabc 2\n", "line 2"),
        ("# header\n0.5 1\n0.4 2\n", "line 3"),
        ("0.5 1\n1.0\n", "line 2 has none"),
        ("0.5 0\n", "line 1"),
        ("# nothing\n\n", "no beats"),
    ],
)
def test_bad_beats_file_is_a_one_line_error_naming_it(
    ref_dir: Path, truths: dict[str, Truth], tmp_path: Path, text: str, detail: str
) -> None:
    refs = tmp_path / "refs"
    shutil.copytree(ref_dir, refs, ignore=shutil.ignore_patterns("*_stems", "*.flac"))
    bad = refs / f"{B}.beats.txt"
    bad.write_text(text)
    run = tmp_path / "run"
    for t in truths.values():
        write_song_tables(run, t)
    with pytest.raises(ConfigError) as err:
        evaluate(run, refs)
    msg = str(err.value)
    assert err.value.key == "evaluate.reference"
    assert str(bad) in msg and detail in msg and "\n" not in msg


def test_bad_midi_file_names_it(ref_dir: Path, truths: dict[str, Truth], tmp_path: Path) -> None:
    refs = tmp_path / "refs"
    refs.mkdir()
    shutil.copy(ref_dir / f"{A}.beats.txt", refs)
    (refs / f"{A}.mid").write_bytes(b"MThd this is not MIDI")
    write_song_tables(tmp_path / "run", truths[A])
    with pytest.raises(ConfigError, match=rf"{A}\.mid.*MIDI"):
        evaluate(tmp_path / "run", refs)


def test_not_a_run_or_no_reference_folder(ref_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        evaluate(tmp_path, ref_dir)
    assert err.value.key == "evaluate.run_dir" and "tables/songs" in str(err.value)
    with pytest.raises(ConfigError) as err:
        evaluate_run(tmp_path / "missing", ref_dir, tmp_path / "out", EvaluateConf())
    assert err.value.key == "evaluate.run_dir"
    (tmp_path / "tables" / "songs").mkdir(parents=True)
    with pytest.raises(ConfigError) as err:
        evaluate(tmp_path, tmp_path / "no-such-folder")
    assert err.value.key == "evaluate.reference"


def test_output_files(perfect) -> None:
    out = perfect.files[0].parent
    names = sorted(p.name for p in out.iterdir())
    stems = ("evaluation", "evaluation_notes", "evaluation_summary", "evaluation_notes_summary")
    assert names == sorted(f"{s}.{ext}" for s in stems for ext in ("csv", "parquet"))
    for stem, df in zip(
        stems,
        (perfect.evaluation, perfect.notes, perfect.summary, perfect.notes_summary),
        strict=True,
    ):
        back = pd.read_parquet(out / f"{stem}.parquet")
        csv = pd.read_csv(out / f"{stem}.csv")
        assert list(back.columns) == list(csv.columns) == list(df.columns)
        assert len(back) == len(csv) == len(df)
        pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert list(perfect.summary["method"]) == ["didactic", "baseline"]
    assert len(perfect.evaluation) == 2 * 3
    by_stem = perfect.notes_summary.set_index("stem")
    assert sorted(by_stem.index) == sorted(PITCHED) and (by_stem["n_songs"] == 3).all()
    assert (by_stem["note_f1"] == 1.0).all()


def test_baseline_can_be_left_out(ref_dir: Path, truths: dict[str, Truth], tmp_path: Path) -> None:
    write_song_tables(tmp_path, truths[A])
    res = evaluate(tmp_path, ref_dir, baseline=False)
    assert list(res.evaluation["method"]) == ["didactic"]
    assert list(res.summary["method"]) == ["didactic"]


# ---- the evaluation set -----------------------------------------------------------------------


def test_sample_specs_cover_meters_and_stay_in_range() -> None:
    for seed in range(25):
        specs = sample_specs(8, seed)
        assert len(specs) == 8
        assert {s.time_signature for s in specs} == set(METERS)
        assert specs == sample_specs(8, seed)  # deterministic
        for s in specs:
            lo, hi = tempo_range(s.time_signature)
            tempi = [s.tempo_bpm, *(bpm for _, bpm in s.tempo_steps)]
            if s.tempo_end_bpm is not None:
                tempi.append(s.tempo_end_bpm)
            assert all(lo <= bpm <= hi for bpm in tempi), s
            assert (lo, hi) == ((50.0, 100.0) if s.time_signature in COMPOUND_METERS else (60, 180))
            bpb = s.meter.beats_per_bar
            assert 0 <= s.pickup_beats <= min(3, bpb - 1)
            assert 0.0 <= s.leading_silence_s <= 1.5
            assert s.swing == 0.0 or s.time_signature in SIMPLE_METERS
            assert 0 <= s.drumless_intro_bars <= 2 and s.sr == 22050
            assert not (s.tempo_steps and s.tempo_end_bpm is not None)
            assert np.all(np.diff(beat_grid(s)) > 0)
    assert sample_specs(8, 1) != sample_specs(8, 2)
    assert {s.time_signature for s in sample_specs(5, 7)} == set(METERS)
    many = sample_specs(60, 0, n_bars=6)
    assert any(s.tempo_steps for s in many) and any(s.tempo_end_bpm for s in many)
    assert any(s.tempo_end_bpm and s.tempo_end_bpm < s.tempo_bpm for s in many)  # ritardando
    assert any(s.tempo_end_bpm and s.tempo_end_bpm > s.tempo_bpm for s in many)  # accelerando
    assert {s.pickup_beats for s in many} == {0, 1, 2, 3}
    assert any(s.leading_silence_s > 0 for s in many) and any(s.swing > 0 for s in many)
    assert {s.drumless_intro_bars for s in many} == {0, 1, 2}
    assert all(1 < b <= 6 for s in many for b, _ in s.tempo_steps)


def test_eval_set_round_trips_through_the_reference_loader(tmp_path: Path) -> None:
    specs = sample_specs(5, seed=3, n_bars=3)
    mixes = write_eval_set(specs, tmp_path)
    assert [m.name for m in mixes] == [f"{song_name(i, s)}.flac" for i, s in enumerate(specs)]
    run = tmp_path / "run"
    for mix in mixes:
        name = mix.stem
        assert slug(name) == name and mix.is_file()
        t = truth_of(mix)
        ref = load_reference(tmp_path, name)
        np.testing.assert_allclose(ref.beat_times, t.beat_times, atol=1e-6)
        np.testing.assert_allclose(ref.downbeat_times, t.downbeat_times, atol=1e-6)
        meter = TimeSignature.parse(t.time_signature)
        expected_pos = (np.arange(t.beat_times.size) - t.downbeats[0]) % meter.beats_per_bar + 1
        np.testing.assert_array_equal(ref.beat_positions, expected_pos)
        assert ref.meter == t.time_signature
        assert ref.drum_stems == {"drums"} and sorted(ref.notes) == sorted(PITCHED)
        for stem in PITCHED:
            want = sorted((n.start_s, n.pitch, n.end_s) for n in t.notes[stem])
            got = sorted(
                (a, int(p), b)
                for (a, b), p in zip(
                    ref.notes[stem].intervals, ref.notes[stem].pitches, strict=True
                )
            )
            assert [g[1] for g in got] == [w[1] for w in want]
            np.testing.assert_allclose([g[0] for g in got], [w[0] for w in want], atol=1e-3)
            np.testing.assert_allclose([g[2] for g in got], [w[2] for w in want], atol=1e-3)
        write_song_tables(run, t)
    # Every meter, tempo change and pickup of the set scores perfectly on its own truth.
    res = evaluate(run, tmp_path)
    assert res.n_songs == 5
    d = res.evaluation[res.evaluation["method"] == "didactic"]
    for key in ("beat_f", "downbeat_f", "grid_bar_acc", "notes_in_right_bar"):
        assert (d[key] == 1.0).all(), key
    assert d["meter_correct"].all() and d["tempo_acc1"].all()


def test_beat_positions_count_pickups_back() -> None:
    from didactic.synth import render_song

    song = render_song(SongSpec(n_bars=1, pickup_beats=2, sr=8000, channels=1, trailing_s=0.1))
    np.testing.assert_array_equal(beat_positions(song), [3, 4, 1, 2, 3, 4])
