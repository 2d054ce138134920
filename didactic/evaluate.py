"""Scoring a finished run against reference annotations with mir_eval (``task=evaluate``).

Two methods are scored per song: ``didactic`` (the run's own grid: its beats, downbeats, tempo
and meter) and ``baseline`` (the naive grid built on the run's own beats: the first beat is a
downbeat and every 4th beat after it, 4/4). The baseline shares the run's beats, tempo and
transcription, so it isolates what downbeat and meter detection add.

This module reads the run's tables, scores each song and writes the tables of scores. The
reference files are read by :mod:`didactic.reference` (which describes them) and the metrics
computed by :mod:`didactic.metrics`.

Metrics that a song's reference cannot support are null, never 0.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from didactic import store
from didactic.atomic import write_bytes
from didactic.config import EvaluateConf, TimeSignature
from didactic.errors import ConfigError
from didactic.grid import BeatGrid
from didactic.metrics import MIN_NOTE_S, beat_scores, downbeat_f, match_notes, prf, tempo_accuracy
from didactic.reference import REFERENCE_KEY, Reference, RefNotes, load_reference

log = logging.getLogger(__name__)

METHODS = ("didactic", "baseline")
MIX_STEM = "mix"
# An onset this close before a bar line counts in the bar that line starts, on the reference and
# on the evaluated grid alike: estimated downbeats may be a few ms late, and a note played a
# hair early is heard on the downbeat. The same value on both sides keeps a perfect grid at 1.
BAR_TOLERANCE_S = 0.05
_RUN_KEY = "evaluate.run_dir"
_RUN_ALLOWED = "a didactic run directory (with tables/songs)"

# Output schemas: one place that fixes every column's name and type.
SONG_COLUMNS: dict[str, pa.DataType] = {
    "song_id": pa.string(),
    "method": pa.string(),
    "reference": pa.string(),  # the reference name the song was matched by
    "n_ref_beats": pa.int64(),
    "n_est_beats": pa.int64(),
    "beat_f": pa.float64(),
    "cmlt": pa.float64(),
    "amlt": pa.float64(),
    "n_ref_downbeats": pa.int64(),
    "downbeat_f": pa.float64(),
    "ref_tempo_bpm": pa.float64(),
    "est_tempo_bpm": pa.float64(),
    "tempo_acc1": pa.bool_(),
    "tempo_acc2": pa.bool_(),
    "ref_time_signature": pa.string(),
    "est_time_signature": pa.string(),
    "meter_correct": pa.bool_(),
    "n_ref_notes": pa.int64(),
    "grid_bar_acc": pa.float64(),
    "n_matched_notes": pa.int64(),
    "notes_in_right_bar": pa.float64(),
}
_POOLED_NOTE_COLUMNS: dict[str, pa.DataType] = {
    "n_ref": pa.int64(),
    "n_est": pa.int64(),
    "n_match": pa.int64(),
    "n_match_offset": pa.int64(),
    "precision": pa.float64(),
    "recall": pa.float64(),
    "note_f1": pa.float64(),
    "note_f1_offset": pa.float64(),
}
NOTE_COLUMNS: dict[str, pa.DataType] = {
    "song_id": pa.string(),
    "stem": pa.string(),
    "reference_stems": pa.string(),  # reference instruments compared, "+"-joined
    **_POOLED_NOTE_COLUMNS,
}
_MEAN_COLUMNS = (
    "beat_f",
    "cmlt",
    "amlt",
    "downbeat_f",
    "tempo_acc1",
    "tempo_acc2",
    "meter_correct",
    "grid_bar_acc",
    "notes_in_right_bar",
)
SUMMARY_COLUMNS: dict[str, pa.DataType] = {
    "method": pa.string(),
    "n_songs": pa.int64(),
    **{c: pa.float64() for c in _MEAN_COLUMNS},
    "notes_in_right_bar_pooled": pa.float64(),
    **_POOLED_NOTE_COLUMNS,
}
NOTES_SUMMARY_COLUMNS: dict[str, pa.DataType] = {
    "stem": pa.string(),
    "n_songs": pa.int64(),
    **_POOLED_NOTE_COLUMNS,
}


# ---- the run ----------------------------------------------------------------------------------


@dataclass
class _Song:
    """What the run says about one song."""

    song_id: str
    name: str  # the source file's name without extension
    duration_s: float
    tempo_bpm: float
    time_signature: str
    stems: list[str]
    grid: BeatGrid
    notes: pd.DataFrame  # this song's rows of the notes table


def _read_table(run_dir: Path, table: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    path = run_dir / "tables" / table
    if not path.is_dir():
        return pd.DataFrame(columns=list(columns or []))
    dset = ds.dataset(path, format="parquet")
    cols = None if columns is None else [c for c in columns if c in dset.schema.names]
    return dset.to_table(columns=cols).to_pandas()


def _run_songs(run_dir: Path) -> list[_Song]:
    songs = _read_table(run_dir, "songs")
    beats = _read_table(run_dir, "beats", ["song_id", "beat_index", "time_s", "is_downbeat"])
    notes = _read_table(
        run_dir,
        "notes",
        ["song_id", "stem", "pitch", "start_s", "end_s", "start_s_q", "bar_index_q"],
    )
    beats_by = dict(tuple(beats.groupby("song_id", sort=False))) if len(beats) else {}
    notes_by = dict(tuple(notes.groupby("song_id", sort=False))) if len(notes) else {}
    out = []
    for rec in songs.sort_values("song_id").to_dict("records"):
        sid = str(rec["song_id"])
        b = beats_by.get(sid)
        if b is None:
            b = pd.DataFrame({"beat_index": [], "time_s": [], "is_downbeat": []})
        b = b.sort_values("beat_index")
        meter = TimeSignature.parse(rec["time_signature"], key="songs.time_signature")
        try:
            grid = BeatGrid(
                b["time_s"].to_numpy(np.float64),
                np.flatnonzero(b["is_downbeat"].to_numpy(bool)),
                float(rec["duration_s"]),
                meter,
            )
        except ValueError as exc:
            raise ConfigError(
                _RUN_KEY, str(run_dir), f"a run with consistent tables (song {sid}: {exc})"
            ) from None
        stems = [str(s) for s in (rec["stems"] if rec["stems"] is not None else [])]
        out.append(
            _Song(
                song_id=sid,
                name=Path(str(rec["source_path"])).stem,
                duration_s=float(rec["duration_s"]),
                tempo_bpm=float(rec["tempo_bpm"]) if rec["tempo_bpm"] is not None else math.nan,
                time_signature=str(meter),
                stems=stems,
                grid=grid,
                notes=notes_by.get(sid, notes.iloc[:0]),
            )
        )
    return out


def _transcription_config(run_dir: Path) -> tuple[bool, frozenset[str]] | None:
    """(did the run transcribe at all, skipped stems) from Hydra's saved config, if any."""
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    try:
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(path)
        target = OmegaConf.select(cfg, "transcriber._target_")
        skip = OmegaConf.select(cfg, "transcriber.skip_stems")
        skip = frozenset(str(s) for s in (skip or []))
    except Exception as exc:  # a hand-edited or foreign file: fall back to the notes table
        log.debug("cannot read %s (%s); judging transcribed stems by the notes", path, exc)
        return None
    if target is None:
        return None
    return not str(target).endswith("NoTranscriber"), skip


def baseline_grid(grid: BeatGrid) -> BeatGrid:
    """The naive grid on ``grid``'s beats: the first beat and every 4th after it open a bar,
    in 4/4 (bar 0 only when the first beat is later than ``MIN_BAR0_S``)."""
    n = grid.n_beats
    return BeatGrid(grid.beat_times, np.arange(0, n, 4), grid.duration_s, TimeSignature(4, 4))


# ---- scoring ----------------------------------------------------------------------------------


@dataclass
class _Matched:
    """Reference notes matched to transcribed ones (onset-only), for the bar metrics."""

    ref_bar: np.ndarray
    est_bar_q: np.ndarray  # the run's bar_index_q of the matched transcribed note
    est_start_q: np.ndarray  # its quantized start (start_s where the run has none)


def _scored_stems(
    song: _Song, ref: Reference, transcribed: Callable[[str], bool]
) -> list[tuple[str, RefNotes, str]]:
    """(run stem, reference notes, reference stems) for every stem that is scored."""
    assert ref.notes is not None
    out = []
    if song.stems == [MIX_STEM] and MIX_STEM not in ref.notes:
        if ref.notes and transcribed(MIX_STEM):
            out.append((MIX_STEM, ref.pooled_notes(), "+".join(ref.notes)))
        return out
    for stem in song.stems:
        key = stem.lower()
        if key in ref.notes and key not in ref.drum_stems and transcribed(stem):
            out.append((stem, ref.notes[key], key))
    return out


def _score_notes(
    song: _Song, ref: Reference, conf: EvaluateConf, transcribed: Callable[[str], bool]
) -> tuple[list[dict], _Matched | None]:
    """One row per scored stem, and the matched notes' bars (None without reference notes)."""
    if ref.notes is None:
        return [], None
    rows, ref_bars, bars_q, starts_q = [], [], [], []
    for stem, rnotes, ref_stems in _scored_stems(song, ref, transcribed):
        est = song.notes[song.notes["stem"] == stem].sort_values("start_s")
        iv = est[["start_s", "end_s"]].to_numpy(np.float64, copy=True).reshape(-1, 2)
        iv[:, 1] = np.maximum(iv[:, 1], iv[:, 0] + MIN_NOTE_S)
        pitch = est["pitch"].to_numpy(np.float64)
        onset = match_notes(rnotes, iv, pitch, conf.onset_tolerance_s, None)
        n_off = (
            len(match_notes(rnotes, iv, pitch, conf.onset_tolerance_s, conf.offset_ratio))
            if conf.offset_ratio is not None
            else None
        )
        p, r, f = prf(len(rnotes), len(pitch), len(onset))
        f_off = math.nan if n_off is None else prf(len(rnotes), len(pitch), n_off)[2]
        rows.append(
            {
                "song_id": song.song_id,
                "stem": stem,
                "reference_stems": ref_stems,
                "n_ref": len(rnotes),
                "n_est": len(pitch),
                "n_match": len(onset),
                "n_match_offset": n_off,
                "precision": p,
                "recall": r,
                "note_f1": f,
                "note_f1_offset": f_off,
            }
        )
        if onset and ref.downbeat_times is not None and ref.downbeat_times.size:
            i, j = (np.asarray(x, dtype=np.int64) for x in zip(*onset, strict=True))
            ref_bars.append(ref.bar_of_time(rnotes.intervals[i, 0] + BAR_TOLERANCE_S))
            q = est["start_s_q"].to_numpy(np.float64) if "start_s_q" in est else iv[:, 0]
            q = np.where(np.isfinite(q), q, iv[:, 0])[j]
            starts_q.append(q)
            if "bar_index_q" in est:
                bars_q.append(est["bar_index_q"].to_numpy(np.float64)[j])
            else:
                bars_q.append(song.grid.bar_of_time(q).astype(np.float64))
    if not ref_bars:
        return rows, None
    return rows, _Matched(
        np.concatenate(ref_bars), np.concatenate(bars_q), np.concatenate(starts_q)
    )


def _score_grid(
    song: _Song,
    ref: Reference,
    method: str,
    grid: BeatGrid,
    tempo_bpm: float,
    time_signature: str,
    matched: _Matched | None,
    conf: EvaluateConf,
) -> dict:
    """One song x method row: beats, downbeats, tempo, meter and the bar metrics."""
    row: dict = {"song_id": song.song_id, "method": method, "reference": ref.name}
    est_beats = grid.beat_times
    est_down = grid.beat_times[grid.downbeats]
    row["n_est_beats"] = int(est_beats.size)
    trim = float(conf.beat_trim_s)
    if ref.beat_times is not None:
        row["n_ref_beats"] = int(ref.beat_times.size)
        row.update(beat_scores(ref.beat_times, est_beats, trim))
        ref_tempo = (
            float(60.0 / np.median(np.diff(ref.beat_times))) if ref.beat_times.size > 1 else None
        )
        row["ref_tempo_bpm"] = ref_tempo
        row["tempo_acc1"], row["tempo_acc2"] = tempo_accuracy(
            tempo_bpm, ref_tempo if ref_tempo is not None else math.nan
        )
    if ref.downbeat_times is not None:
        row["n_ref_downbeats"] = int(ref.downbeat_times.size)
        row["downbeat_f"] = downbeat_f(ref.downbeat_times, est_down, trim)
    row["est_tempo_bpm"] = tempo_bpm
    row["est_time_signature"] = time_signature
    row["ref_time_signature"] = ref.meter
    if ref.meter is not None:
        row["meter_correct"] = TimeSignature.parse(time_signature) == _parse_meter(ref.meter)
    pooled = ref.pooled_notes()
    if pooled is not None:
        row["n_ref_notes"] = len(pooled)
        onsets = pooled.intervals[:, 0] + BAR_TOLERANCE_S
        ref_bar = ref.bar_of_time(onsets)
        if ref_bar is not None and len(pooled):
            row["grid_bar_acc"] = float(np.mean(grid.bar_of_time(onsets) == ref_bar))
    if matched is not None:
        est_bar = (
            matched.est_bar_q if method == "didactic" else grid.bar_of_time(matched.est_start_q)
        )
        row["n_matched_notes"] = int(matched.ref_bar.size)
        row["notes_in_right_bar"] = float(np.mean(est_bar == matched.ref_bar))
    elif pooled is not None and ref.downbeat_times is not None and ref.downbeat_times.size:
        row["n_matched_notes"] = 0
    return row


def _parse_meter(text: str) -> TimeSignature | None:
    try:
        return TimeSignature.parse(text)
    except ConfigError:
        return None


# ---- tables ----------------------------------------------------------------------------------


def _frame(rows: list[dict], columns: dict[str, pa.DataType]) -> pd.DataFrame:
    """Rows as a DataFrame with exactly ``columns``: missing and NaN values are nulls (NaN in
    float columns, <NA> in the nullable integer, boolean and string ones)."""
    dtypes = {}
    for name, typ in columns.items():
        if pa.types.is_floating(typ):
            dtypes[name] = "float64"
        elif pa.types.is_integer(typ):
            dtypes[name] = "Int64"
        elif pa.types.is_boolean(typ):
            dtypes[name] = "boolean"
        else:
            dtypes[name] = "string"
    data = {name: [_null(r.get(name)) for r in rows] for name in columns}
    return pd.DataFrame({k: pd.array(v, dtype=dtypes[k]) for k, v in data.items()})


def _null(v: object) -> object:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if isinstance(v, np.generic) else v


def _pooled(frame: pd.DataFrame) -> dict:
    """Note counts summed over ``frame``'s rows and the micro-averaged scores from them."""
    n_ref, n_est = int(frame["n_ref"].sum()), int(frame["n_est"].sum())
    n_match = int(frame["n_match"].sum())
    off = frame["n_match_offset"]
    n_off = int(off.sum()) if len(frame) and off.notna().all() else None
    p, r, f = prf(n_ref, n_est, n_match)
    return {
        "n_ref": n_ref,
        "n_est": n_est,
        "n_match": n_match,
        "n_match_offset": n_off,
        "precision": p,
        "recall": r,
        "note_f1": f,
        "note_f1_offset": math.nan if n_off is None else prf(n_ref, n_est, n_off)[2],
    }


def _summaries(
    evaluation: pd.DataFrame, notes: pd.DataFrame, methods: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    pooled_notes = _pooled(notes)
    for method in methods:
        ev = evaluation[evaluation["method"] == method]
        row: dict = {"method": method, "n_songs": int(ev["song_id"].nunique())}
        for col in _MEAN_COLUMNS:
            vals = ev[col].astype("Float64").dropna()
            row[col] = float(vals.mean()) if len(vals) else math.nan
        n = ev["n_matched_notes"].astype("Float64").fillna(0.0)
        share = ev["notes_in_right_bar"].astype("Float64").fillna(0.0)
        row["notes_in_right_bar_pooled"] = (
            float((n * share).sum() / n.sum()) if n.sum() > 0 else math.nan
        )
        row.update(pooled_notes)
        rows.append(row)
    stem_rows = []
    for stem, frame in notes.groupby("stem", sort=True):
        stem_rows.append(
            {"stem": stem, "n_songs": int(frame["song_id"].nunique()), **_pooled(frame)}
        )
    return _frame(rows, SUMMARY_COLUMNS), _frame(stem_rows, NOTES_SUMMARY_COLUMNS)


def _write(df: pd.DataFrame, columns: dict[str, pa.DataType], out: Path, meta: dict) -> list[Path]:
    """``out``.parquet and ``out``.csv, each written atomically."""
    schema = pa.schema(list(columns.items())).with_metadata(meta)
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    pq_path, csv_path = out.with_suffix(".parquet"), out.with_suffix(".csv")
    store.write_table(table, pq_path)
    write_bytes(csv_path, df.to_csv(index=False).encode("utf-8"))
    return [pq_path, csv_path]


# ---- entry point ------------------------------------------------------------------------------


@dataclass
class EvaluationResult:
    """What :func:`evaluate_run` computed and wrote.

    Attributes
    ----------
    evaluation
        One row per song x method (``SONG_COLUMNS``).
    notes
        One row per song x scored stem (``NOTE_COLUMNS``); the same for every method.
    summary
        One row per method: means over songs of the song metrics (songs where a metric is null
        are left out of its mean), ``notes_in_right_bar_pooled`` (over all matched notes), and
        the note metrics micro-averaged over every song and scored stem.
    notes_summary
        One row per stem: its note metrics micro-averaged over songs.
    n_songs
        Songs scored (those of the run's songs table that have reference files).
    n_skipped
        Songs of the run without any reference file.
    files
        The files written.
    """

    evaluation: pd.DataFrame
    notes: pd.DataFrame
    summary: pd.DataFrame
    notes_summary: pd.DataFrame
    n_songs: int
    n_skipped: int
    files: list[Path] = field(default_factory=list)


def _check_conf(conf: EvaluateConf) -> None:
    if not (isinstance(conf.onset_tolerance_s, int | float) and 0 < conf.onset_tolerance_s <= 1):
        raise ConfigError(
            "evaluate.onset_tolerance_s", conf.onset_tolerance_s, "a number in (0, 1]"
        )
    ratio = conf.offset_ratio
    if ratio is not None and not (isinstance(ratio, int | float) and 0 < ratio <= 10):
        raise ConfigError("evaluate.offset_ratio", ratio, "a number in (0, 10], or null")
    if not (isinstance(conf.beat_trim_s, int | float) and conf.beat_trim_s >= 0):
        raise ConfigError("evaluate.beat_trim_s", conf.beat_trim_s, "a number of seconds >= 0")


def evaluate_run(
    run_dir: Path, reference: Path, out_dir: Path, conf: EvaluateConf
) -> EvaluationResult:
    """Score every song of ``run_dir`` that has reference files in ``reference``.

    Writes ``evaluation``, ``evaluation_notes``, ``evaluation_summary`` and
    ``evaluation_notes_summary`` (each ``.parquet`` and ``.csv``) into ``out_dir``.

    Notes are scored per run stem against the reference instrument of the same name; a run
    without stems (its one stem ``mix``) against all pitched reference notes pooled. Drum
    references and stems the run did not transcribe (per its saved Hydra config; without one,
    stems that have no notes anywhere in the run) are not scored. Beat trimming
    (``beat_trim_s``) applies to beats and downbeats, not to notes.

    Raises
    ------
    ConfigError
        ``evaluate.run_dir`` that is not a run, ``evaluate.reference`` that is not a folder or
        holds an unreadable file (named), or that matches no song of the run.
    """
    _check_conf(conf)
    if run_dir is None or not (Path(run_dir) / "tables" / "songs").is_dir():
        raise ConfigError(_RUN_KEY, None if run_dir is None else str(run_dir), _RUN_ALLOWED)
    if reference is None or not Path(reference).is_dir():
        value = None if reference is None else str(reference)
        raise ConfigError(REFERENCE_KEY, value, "an existing folder of reference annotations")
    run_dir, reference, out_dir = Path(run_dir), Path(reference), Path(out_dir)
    songs = _run_songs(run_dir)
    if not songs:
        raise ConfigError(_RUN_KEY, str(run_dir), "a didactic run with at least one finished song")
    methods = METHODS if conf.baseline else METHODS[:1]
    _log_unfinished(run_dir, {s.song_id for s in songs})

    tconf = _transcription_config(run_dir)
    with_notes = {str(s) for s in pd.concat([s.notes["stem"] for s in songs]).unique()}

    def transcribed(stem: str) -> bool:
        if tconf is None:
            return stem in with_notes
        return tconf[0] and stem not in tconf[1]

    rows, note_rows, skipped = [], [], 0
    for song in songs:
        ref = load_reference(reference, song.name)
        if ref is None and song.song_id != song.name:
            ref = load_reference(reference, song.song_id)
        if ref is None:
            log.warning(
                "song %s: no reference files for %r in %s; skipped",
                song.song_id,
                song.name,
                reference,
            )
            skipped += 1
            continue
        stem_rows, matched = _score_notes(song, ref, conf, transcribed)
        note_rows.extend(stem_rows)
        grids = {"didactic": (song.grid, song.tempo_bpm, song.time_signature)}
        if conf.baseline:
            grids["baseline"] = (baseline_grid(song.grid), song.tempo_bpm, "4/4")
        for method in methods:
            grid, tempo, ts = grids[method]
            rows.append(_score_grid(song, ref, method, grid, tempo, ts, matched, conf))
    if len(songs) == skipped:
        raise ConfigError(
            REFERENCE_KEY,
            str(reference),
            f"a folder holding reference files for the run's songs (none of {len(songs)} found, "
            f"e.g. {songs[0].name}.beats.txt)",
        )

    evaluation = _frame(rows, SONG_COLUMNS)
    notes = _frame(note_rows, NOTE_COLUMNS)
    summary, notes_summary = _summaries(evaluation, notes, methods)
    meta = {
        "didactic.evaluate": json.dumps(
            {
                "run_dir": str(run_dir),
                "reference": str(reference),
                "onset_tolerance_s": conf.onset_tolerance_s,
                "offset_ratio": conf.offset_ratio,
                "beat_trim_s": conf.beat_trim_s,
                "bar_tolerance_s": BAR_TOLERANCE_S,
            }
        )
    }
    files = []
    for df, cols, stem in (
        (evaluation, SONG_COLUMNS, "evaluation"),
        (notes, NOTE_COLUMNS, "evaluation_notes"),
        (summary, SUMMARY_COLUMNS, "evaluation_summary"),
        (notes_summary, NOTES_SUMMARY_COLUMNS, "evaluation_notes_summary"),
    ):
        files += _write(df, cols, out_dir / stem, meta)
    n_songs = len(songs) - skipped
    _log_summary(summary, n_songs, skipped)
    return EvaluationResult(evaluation, notes, summary, notes_summary, n_songs, skipped, files)


def _log_unfinished(run_dir: Path, finished: set[str]) -> None:
    """Say how many songs of the run's manifest have no results (failed or pending)."""
    path = run_dir / "manifest.parquet"
    if not path.is_file():
        return
    try:
        listed = set(pd.read_parquet(path, columns=["song_id"])["song_id"].astype(str))
    except Exception as exc:  # an unreadable manifest does not stop the evaluation
        log.debug("cannot read %s: %s", path, exc)
        return
    if listed - finished:
        log.info(
            "%d songs of the run have no results (failed or not processed); not evaluated",
            len(listed - finished),
        )


def _log_summary(summary: pd.DataFrame, n_songs: int, n_skipped: int) -> None:
    for rec in summary.to_dict("records"):
        log.info(
            "evaluate %s: %d songs (%d without reference skipped): beat F %.3f, downbeat F %.3f, "
            "tempo Acc1 %.3f, meter %.3f, bar accuracy %.3f, note F1 %.3f",
            rec["method"],
            n_songs,
            n_skipped,
            *(
                _nan(rec[k])
                for k in ("beat_f", "downbeat_f", "tempo_acc1", "meter_correct", "grid_bar_acc")
            ),
            _nan(rec["note_f1"]),
        )


def _nan(v: object) -> float:
    return math.nan if v is None or v is pd.NA else float(v)
