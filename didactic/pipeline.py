"""One song through the house: load, separate, rhythm, features, chunks, transcribe, align,
store. Stages compute; this module decides what is written where and times each stage."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from didactic import store
from didactic.audio import Audio, read_audio, write_audio
from didactic.cache import StageCache, array_hash, cache_key
from didactic.config import Config, TimeSignature, grid_steps_per_beat, parse_meter
from didactic.errors import AudioError, DidacticError, StageError, StorageError
from didactic.grid import BeatGrid
from didactic.midi import write_midi
from didactic.songs import SongRef
from didactic.stages.align import align_notes
from didactic.stages.chunks import bar_chunks
from didactic.stages.separate import MIX_STEM, SongAudio
from didactic.stages.transcribe import Notes
from didactic.stages_factory import Stages

log = logging.getLogger(__name__)

# The stages in the order they run: what progress, timeouts and breakers name.
STAGES = ("load", "separate", "rhythm", "features", "chunks", "transcribe", "align", "store")


@dataclass
class SongResult:
    """What happened to one song."""

    song_id: str
    source_path: str
    content_hash: str = ""
    duration_s: float = 0.0
    n_bars: int = 0
    n_notes: int = 0
    stems: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


class _Timer:
    def __init__(self, on_stage: Callable[[str], None] | None) -> None:
        self.seconds: dict[str, float] = {}
        self.on_stage = on_stage

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.on_stage is not None:
            self.on_stage(name)
        t0 = time.perf_counter()
        try:
            yield
        except StageError:
            raise
        except DidacticError as exc:
            exc.stage = getattr(exc, "stage", None) or name
            raise
        except OSError as exc:  # disk full, read-only, a failing network disk
            where = f": {exc.filename}" if exc.filename else ""
            raise StorageError(name, f"{exc.strerror or exc}{where}") from exc
        except Exception as exc:  # a bug or a library's own error: say where it happened
            if not hasattr(exc, "didactic_stage"):
                exc.didactic_stage = name
            raise
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


@dataclass
class SongContext:
    """What a song's processing needs besides the song: where to write, how, with what."""

    cfg: Config
    stages: Stages
    run_dir: Path
    meta: dict[str, str]
    cache: StageCache
    threads: int = 1
    on_stage: Callable[[str], None] | None = None


def process_song(song: SongRef, ctx: SongContext) -> SongResult:
    """Run every stage on ``song`` and write its files and tables under ``ctx.run_dir``.

    Tables are written last, each atomically and the ``songs`` table after the others, so a
    song is listed in ``songs`` only once all of its rows and files exist.
    """
    with ThreadPoolExecutor(max_workers=max(1, ctx.threads)) as pool:
        return _process(song, ctx, pool)


def _process(song: SongRef, ctx: SongContext, pool: ThreadPoolExecutor) -> SongResult:
    cfg, stages, run_dir = ctx.cfg, ctx.stages, ctx.run_dir
    timer = _Timer(ctx.on_stage)
    result = SongResult(song.song_id, str(song.path))
    out_dir = store.song_dir(run_dir, song.song_id)
    given = parse_meter(song.time_signature or cfg.time_signature)  # None: estimate it
    sr = cfg.analysis_sr

    with timer.stage("load"):
        audio = read_audio(song.path)
        result.content_hash = audio.content_hash
        result.duration_s = audio.duration_s
        mix_mono = audio.mono(sr)

    with timer.stage("separate"):
        stems = _separate(song, audio, result.content_hash, ctx)
        result.stems = list(stems)
        if cfg.output.write_stems and list(stems) != [MIX_STEM]:
            for name, a in stems.items():
                path = out_dir / "stems" / f"{name}.wav"
                write_audio(path, a.samples, a.sr, cfg.output.audio_subtype)

    with timer.stage("rhythm"):
        grid = stages.rhythm(mix_mono, sr, cfg.hop_length, given)
        meter = grid.meter
        bar_s = meter.beats_per_bar * 60.0 / grid.tempo_bpm
        if audio.duration_s < bar_s:
            raise AudioError(
                song.path,
                f"shorter than one bar ({audio.duration_s:.2f} s < {bar_s:.2f} s at "
                f"{grid.tempo_bpm:.1f} BPM in {meter})",
            )
        result.n_bars = grid.n_bars

    with timer.stage("features"):
        # Stems are independent; numpy and librosa release the GIL in their heavy parts.
        names = list(stems)
        done = pool.map(
            lambda n: stages.features(stems[n].mono(sr), sr, cfg.hop_length, grid), names
        )
        features = dict(zip(names, done, strict=True))

    chunk_paths: dict[str, list[str | None]] = {n: [None] * grid.n_bars for n in stems}
    if cfg.chunks.enabled:
        with timer.stage("chunks"):
            for name, a in stems.items():
                x, csr = (a.samples, a.sr) if cfg.chunks.preserve else (a.mono(sr), sr)
                for row, (bar, chunk) in enumerate(bar_chunks(x, csr, grid)):
                    path = out_dir / "chunks" / name / f"bar_{bar:04d}.wav"
                    write_audio(path, chunk, csr, cfg.output.audio_subtype)
                    chunk_paths[name][row] = str(path.relative_to(run_dir))

    with timer.stage("transcribe"):
        skip = set(cfg.transcriber.skip_stems)
        pitched = [n for n in stems if stages.transcribes and n not in skip]
        done = pool.map(lambda n: _transcribe(stems[n], ctx), pitched)
        notes = dict(zip(pitched, done, strict=True))

    with timer.stage("align"):
        steps = grid_steps_per_beat(cfg.align.grid, meter)
        aligned = {name: align_notes(n, grid, steps) for name, n in notes.items()}
        result.n_notes = sum(len(n) for n in notes.values())

    with timer.stage("store"):
        for name, n in notes.items():
            write_midi(out_dir / "midi" / f"{name}.mid", {name: n}, grid)
            if cfg.align.quantized_midi:
                q = Notes(n.pitch, n.velocity, aligned[name]["start_s_q"], aligned[name]["end_s_q"])
                write_midi(out_dir / "midi" / f"{name}.quantized.mid", {name: q}, grid)
        if len(notes) > 1:
            write_midi(out_dir / "midi" / "all.mid", notes, grid)
        tables = _song_tables(
            song, result, audio, grid, meter, features, chunk_paths, notes, aligned, cfg
        )
        # `songs` last: a song is in the dataset's songs table only once the rest is written.
        for table in (*[t for t in store.TABLES if t != "songs"], "songs"):
            cols, schema = tables[table]
            path = store.table_path(run_dir, table, song.song_id)
            store.write_table(store.to_table(cols, schema, ctx.meta), path)

    result.seconds = timer.seconds
    return result


def _separate(song: SongRef, audio: Audio, content_hash: str, ctx: SongContext) -> dict[str, Audio]:
    """Stems from the cache, or from the separator (then checked and cached)."""
    sep = ctx.stages.separator
    cacheable = ctx.cache.enabled and getattr(sep, "cacheable", True)
    key = ""
    if cacheable:
        key = cache_key("separate", content_hash, ctx.stages.separator_options, _model_id(sep))
        cached = ctx.cache.load_stems(key)
        if cached is not None:
            log.debug("song %s: stems from the cache", song.song_id)
            return cached
    stems = sep(SongAudio(song.song_id, song.path, audio, song.stems_dir))
    if not stems:
        raise StageError("separate", f"{song.path}: the separator returned no stems")
    for name, a in stems.items():
        if a.sr != audio.sr or a.n_samples != audio.n_samples:
            raise StageError(
                "separate",
                f"{song.path}: stem {name!r} has {a.n_samples} samples at {a.sr} Hz, the mix "
                f"{audio.n_samples} at {audio.sr} Hz",
            )
    if cacheable:
        ctx.cache.save_stems(key, stems)
    return stems


def _transcribe(stem: Audio, ctx: SongContext) -> Notes:
    tr = ctx.stages.transcriber
    y = stem.mono(tr.sample_rate)
    key = ""
    if ctx.cache.enabled:
        key = cache_key("transcribe", array_hash(y), ctx.stages.transcriber_options, _model_id(tr))
        cached = ctx.cache.load_notes(key)
        if cached is not None:
            return cached
    notes = tr(y)
    if ctx.cache.enabled:
        ctx.cache.save_notes(key, notes)
    return notes


def _model_id(stage: object) -> str:
    return str(getattr(stage, "model_id", f"{type(stage).__module__}.{type(stage).__qualname__}"))


def grid_tables(song_id: str, grid: BeatGrid) -> tuple[dict, dict]:
    """The beats and bars tables' columns of one song's grid."""
    is_down = np.zeros(grid.n_beats, dtype=bool)
    is_down[grid.downbeats] = True
    beats = {
        "song_id": [song_id] * grid.n_beats,
        "beat_index": np.arange(grid.n_beats),
        "time_s": grid.beat_times,
        "bar_index": grid.beat_bar_index,
        "beat_in_bar": grid.beat_in_bar,
        "is_downbeat": is_down,
        "local_tempo_bpm": grid.local_tempo_bpm,
    }
    bars = {
        "song_id": [song_id] * grid.n_bars,
        "bar_index": grid.bar_numbers,
        "start_s": grid.bar_starts,
        "end_s": grid.bar_ends,
        "n_beats": grid.bar_n_beats,
        "tempo_bpm": grid.bar_tempo_bpm,
        "is_pickup": (grid.bar_numbers == 0) & (grid.bar_n_beats > 0),
    }
    return beats, bars


def _song_tables(
    song: SongRef,
    result: SongResult,
    audio: Audio,
    grid: BeatGrid,
    meter: TimeSignature,
    features: dict[str, dict[str, np.ndarray]],
    chunk_paths: dict[str, list[str | None]],
    notes: dict[str, Notes],
    aligned: dict[str, dict[str, np.ndarray]],
    cfg: Config,
) -> dict[str, tuple[dict, pa.Schema]]:
    """The five tables' columns for one song, each with its schema."""
    sid = song.song_id
    songs = {
        "song_id": [sid],
        "source_path": [str(song.path)],
        "content_hash": [result.content_hash],
        "duration_s": [audio.duration_s],
        "sample_rate": [audio.sr],
        "channels": [audio.channels],
        "tempo_bpm": [grid.tempo_bpm],
        "time_signature": [str(meter)],
        "beats_per_bar": [meter.beats_per_bar],
        "meter_confidence": [grid.meter_confidence],
        "n_beats": [grid.n_beats],
        "n_bars": [grid.n_bars],
        "stems": [result.stems],
    }
    beats, bars = grid_tables(sid, grid)
    fschema = store.bar_features_schema(cfg.features.n_mfcc, cfg.features.contrast_bands)
    fcols: dict[str, list] = {name: [] for name in fschema.names}
    for stem, cols in features.items():
        fcols["song_id"] += [sid] * grid.n_bars
        fcols["stem"] += [stem] * grid.n_bars
        fcols["bar_index"] += list(grid.bar_numbers)
        fcols["start_s"] += list(grid.bar_starts)
        fcols["end_s"] += list(grid.bar_ends)
        fcols["chunk_path"] += chunk_paths[stem]
        for k, v in cols.items():
            fcols[k] += list(v)
    ncols: dict[str, list] = {name: [] for name in store.NOTES_SCHEMA.names}
    for stem, n in notes.items():
        ncols["song_id"] += [sid] * len(n)
        ncols["stem"] += [stem] * len(n)
        for k in ("pitch", "velocity", "start_s", "end_s"):
            ncols[k] += list(getattr(n, k))
        for k, v in aligned[stem].items():
            ncols[k] += list(v)
    ncols = {
        k: (np.asarray(v) if k in ("beat_index", "beat_in_bar") else v) for k, v in ncols.items()
    }
    return {
        "songs": (songs, store.SONGS_SCHEMA),
        "beats": (beats, store.BEATS_SCHEMA),
        "bars": (bars, store.BARS_SCHEMA),
        "bar_features": (fcols, fschema),
        "notes": (ncols, store.NOTES_SCHEMA),
    }
