"""Table schemas, Parquet writing and the run directory's layout.

Each table is one dataset for the whole run: ``tables/<table>/<song_id>.parquet``, every file
with the table's fixed schema (written even when empty), so ``pyarrow.dataset.dataset(path)``
reads all songs at once. Files are written atomically; the temporary names start with a dot,
which ``pyarrow.dataset`` ignores.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from didactic.atomic import write_bytes
from didactic.stages.features import feature_columns

TABLES = ("songs", "beats", "bars", "bar_features", "notes")

_I32, _F64, _F32, _STR, _BOOL = pa.int32(), pa.float64(), pa.float32(), pa.string(), pa.bool_()

SONGS_SCHEMA = pa.schema(
    [
        ("song_id", _STR),
        ("source_path", _STR),
        ("content_hash", _STR),
        ("duration_s", _F64),
        ("sample_rate", _I32),
        ("channels", _I32),
        ("tempo_bpm", _F64),
        ("time_signature", _STR),
        ("beats_per_bar", _I32),
        ("meter_confidence", _F64),  # null when the meter was given, not estimated
        ("n_beats", _I32),
        ("n_bars", _I32),
        ("stems", pa.list_(_STR)),
    ]
)
BEATS_SCHEMA = pa.schema(
    [
        ("song_id", _STR),
        ("beat_index", _I32),
        ("time_s", _F64),
        ("bar_index", _I32),
        ("beat_in_bar", _I32),
        ("is_downbeat", _BOOL),
        ("local_tempo_bpm", _F64),
    ]
)
BARS_SCHEMA = pa.schema(
    [
        ("song_id", _STR),
        ("bar_index", _I32),
        ("start_s", _F64),
        ("end_s", _F64),
        ("n_beats", _I32),
        ("tempo_bpm", _F64),
        ("is_pickup", _BOOL),
    ]
)
NOTES_SCHEMA = pa.schema(
    [
        ("song_id", _STR),
        ("stem", _STR),
        ("pitch", _I32),
        ("velocity", _I32),
        ("start_s", _F64),
        ("end_s", _F64),
        ("beat_index", _I32),
        ("bar_index", _I32),
        ("beat_in_bar", _I32),
        ("start_beat", _F64),
        ("end_beat", _F64),
        ("bar_position", _F64),
        ("start_beat_q", _F64),
        ("end_beat_q", _F64),
        ("start_s_q", _F64),
        ("end_s_q", _F64),
        ("bar_index_q", _I32),
        ("bar_position_q", _F64),
    ]
)


def bar_features_schema(n_mfcc: int = 13, contrast_bands: int = 6) -> pa.Schema:
    """The bar_features schema for a features config (the MFCC and contrast counts)."""
    fields = [
        ("song_id", _STR),
        ("stem", _STR),
        ("bar_index", _I32),
        ("start_s", _F64),
        ("end_s", _F64),
    ]
    for name in feature_columns(n_mfcc, contrast_bands):
        fields.append((name, _I32 if name == "onset_count" else _F32))
    fields.append(("chunk_path", _STR))
    return pa.schema(fields)


def table_path(run_dir: Path, table: str, song_id: str) -> Path:
    return run_dir / "tables" / table / f"{song_id}.parquet"


def song_dir(run_dir: Path, song_id: str) -> Path:
    return run_dir / "songs" / song_id


def to_table(columns: dict[str, object], schema: pa.Schema, metadata: dict[str, str]) -> pa.Table:
    """Build a table with exactly ``schema``'s columns. Undefined values become nulls: NaN in
    float columns, and -1 in the nullable index columns (``beat_index``, ``beat_in_bar``)."""
    arrays = []
    for f in schema:
        values = columns[f.name]
        mask = None
        if pa.types.is_floating(f.type):
            values = np.asarray(values, dtype=np.float64)
            mask = np.isnan(values)
        elif f.name in _NULL_IF_NEGATIVE:
            values = np.asarray(values, dtype=np.int64)
            mask = values < 0
        arrays.append(
            pa.array(values, type=f.type, mask=mask if mask is not None and mask.any() else None)
        )
    return pa.Table.from_arrays(arrays, schema=schema.with_metadata(metadata))


_NULL_IF_NEGATIVE = frozenset({"beat_index", "beat_in_bar"})


def write_table(table: pa.Table, path: Path) -> None:
    """Serialize in memory, then write atomically (a crash leaves the old file or none)."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    write_bytes(path, buf.getvalue())


def empty_columns(schema: pa.Schema) -> dict[str, list]:
    return {f.name: [] for f in schema}


def schema_metadata(fingerprint: str, versions: dict[str, str]) -> dict[str, str]:
    """What every table's schema carries: the config fingerprint and the package versions."""
    return {"didactic.config_fingerprint": fingerprint, "didactic.versions": json.dumps(versions)}
