"""``task=evaluate`` end to end: a seeded set of rendered songs, run and scored as a user would."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from didactic.evalset import MANIFEST, sample_specs, write_eval_set


@pytest.fixture(scope="module")
def scored(cli_module, tmp_path_factory) -> dict[str, object]:
    """Five songs (every meter, pickups, tempo changes...) run with their true meters and the
    rendered stems, then evaluated against their reference files."""
    work = tmp_path_factory.mktemp("evalset")
    songs = work / "songs"
    specs = sample_specs(5, seed=7, n_bars=8)
    write_eval_set(specs, songs)
    run = cli_module(
        f"song={songs / MANIFEST}", "separator=precomputed", f"hydra.run.dir={work / 'run'}"
    )
    assert run.code == 0, run.err
    ev = cli_module(
        "task=evaluate",
        f"evaluate.run_dir={work / 'run'}",
        f"evaluate.reference={songs}",
        f"hydra.run.dir={work / 'eval'}",
    )
    return {"work": work, "specs": specs, "out": ev.out, "code": ev.code, "err": ev.err}


def test_evaluation_writes_its_tables_and_one_line(scored) -> None:
    work: Path = scored["work"]
    assert scored["code"] == 0, scored["err"]
    assert scored["out"].strip().splitlines()[-1] == (
        f"didactic: evaluated 5 songs; results in {work / 'eval'}"
    )
    for name in ("evaluation", "evaluation_notes", "evaluation_summary"):
        assert (work / "eval" / f"{name}.parquet").is_file()
        assert (work / "eval" / f"{name}.csv").is_file()
    assert (work / "eval" / ".hydra" / "config.yaml").is_file()
    per = pd.read_parquet(work / "eval" / "evaluation.parquet")
    assert sorted(per["method"].unique()) == ["baseline", "didactic"]
    assert per["song_id"].nunique() == 5


def test_didactic_beats_the_naive_grid_on_known_truth(scored) -> None:
    """The seeded songs' truth is exact: beats, downbeats and bars must be nearly perfect, and
    where the naive grid (first beat = downbeat, 4/4) is wrong, didactic must not be."""
    summary = pd.read_parquet(scored["work"] / "eval" / "evaluation_summary.parquet")
    by = summary.set_index("method")
    ours, naive = by.loc["didactic"], by.loc["baseline"]
    assert ours["beat_f"] >= 0.95
    assert ours["downbeat_f"] >= 0.9
    assert ours["tempo_acc1"] >= 0.8
    assert ours["meter_correct"] == 1.0  # the meters were given
    assert ours["grid_bar_acc"] >= 0.9
    assert ours["notes_in_right_bar"] >= 0.9
    assert ours["note_f1"] >= 0.7
    assert ours["downbeat_f"] > naive["downbeat_f"]
    assert ours["grid_bar_acc"] > naive["grid_bar_acc"]


def test_per_stem_note_scores(scored) -> None:
    notes = pd.read_parquet(scored["work"] / "eval" / "evaluation_notes.parquet")
    assert set(notes["stem"]) == {"bass", "other", "vocals"}  # drums are not transcribed
    assert (notes["n_ref"] > 0).all()
    assert notes["note_f1"].between(0, 1).all() and notes["note_f1_offset"].between(0, 1).all()
    assert (notes["note_f1_offset"] <= notes["note_f1"] + 1e-9).all()


def test_evaluate_without_a_run_dir_is_one_line(cli, tmp_path) -> None:
    res = cli("task=evaluate", f"evaluate.reference={tmp_path}", f"hydra.run.dir={tmp_path / 'e'}")
    assert res.code == 2
    assert res.err.count("\n") == 1 and "evaluate.run_dir" in res.err


def test_evaluate_a_folder_that_is_not_a_run(cli, tmp_path) -> None:
    res = cli(
        "task=evaluate",
        f"evaluate.run_dir={tmp_path}",
        f"evaluate.reference={tmp_path}",
        f"hydra.run.dir={tmp_path / 'e'}",
    )
    assert res.code == 2
    assert res.err.count("\n") == 1 and "evaluate.run_dir" in res.err and str(tmp_path) in res.err


def test_unknown_task(cli, tmp_path) -> None:
    res = cli("task=train", f"hydra.run.dir={tmp_path / 'e'}")
    assert res.code == 2
    assert res.err.count("\n") == 1 and "task" in res.err and "evaluate" in res.err


def test_an_evaluation_sweep_is_summarized(cli, scored) -> None:
    """``-m`` over an evaluate option: one scored job per value, both ok in the sweep summary."""
    work: Path = scored["work"]
    res = cli(
        "-m",
        "task=evaluate",
        f"evaluate.run_dir={work / 'run'}",
        f"evaluate.reference={work / 'songs'}",
        "evaluate.onset_tolerance_s=0.02,0.05",
        f"hydra.sweep.dir={work / 'sweep'}",
    )
    assert res.code == 0, res.err
    summary = pd.read_csv(work / "sweep" / "sweep_summary.csv")
    assert summary["status"].tolist() == ["ok", "ok"] and summary["songs"].tolist() == [5, 5]
    strict, loose = (
        pd.read_parquet(work / "sweep" / str(j) / "evaluation_summary.parquet")
        .set_index("method")
        .loc["didactic", "note_f1"]
        for j in (0, 1)
    )
    assert strict <= loose
