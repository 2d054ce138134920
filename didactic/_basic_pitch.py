"""Importing Basic Pitch quietly and loading its bundled ONNX model.

basic-pitch probes for TensorFlow, CoreML and TFLite at import time and logs a WARNING on the
root logger for each one it does not find; we use its ONNX model only, so those lines are noise.
"""

from __future__ import annotations

import logging
import warnings
from functools import lru_cache
from pathlib import Path


class _DropBackendNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not ("is not installed" in msg and "basic-pitch" in msg)


@lru_cache(maxsize=1)
def _import():
    root = logging.getLogger()
    flt = _DropBackendNotices()
    root.addFilter(flt)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # resampy's pkg_resources deprecation notice
            import basic_pitch.inference as inference
    finally:
        root.removeFilter(flt)
    return inference


@lru_cache(maxsize=4)
def load_model(threads: int | None = None):
    """The ICASSP 2022 model from the basic-pitch wheel on onnxruntime, once per process.

    ``threads`` caps onnxruntime's intra-op threads (its default is every core, which
    oversubscribes the machine when several workers run).
    """
    inference = _import()
    path = Path(inference.__file__).parent / "saved_models" / "icassp_2022" / "nmp.onnx"
    model = inference.Model(path)
    if threads is not None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        model.model = ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
    return model
