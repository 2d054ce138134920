"""Building the stage objects from the config, once per process.

Each stage class is named by its group's ``_target_`` and built with the group's options except
the ones the pipeline consumes itself (:data:`~didactic.config.PIPELINE_KEYS`). Separators also
get ``stems``, ``device`` and ``seed``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_class
from omegaconf import OmegaConf

from didactic.config import PIPELINE_KEYS, Config
from didactic.errors import ConfigError, DidacticError
from didactic.stages.separate import NoSeparator, Separator
from didactic.stages.transcribe import NoTranscriber

log = logging.getLogger(__name__)


@dataclass
class Stages:
    """The stage objects of one process."""

    separator: Separator
    rhythm: Any
    features: Any
    transcriber: Any
    separator_options: dict = field(default_factory=dict)  # what the separator was built with
    transcriber_options: dict = field(default_factory=dict)

    @property
    def transcribes(self) -> bool:
        return not isinstance(self.transcriber, NoTranscriber)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` must be available."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", device, "auto or cpu (no CUDA device is available)")
    return device


def build_stages(cfg: Config, threads: int = 1) -> Stages:
    """Instantiate every stage of ``cfg`` (a composed, validated config).

    ``threads`` is this process's share of the cores, handed to the model runtimes.
    """
    device = resolve_device(cfg.device)
    if cfg.stems == 0:
        separator: Separator = NoSeparator()
        sep_opts: dict = {"_target_": "none"}
    else:
        # The weights' identity (model_id) stands for `repo`: moving the folder keeps the cache.
        sep_opts = {**_options(cfg.separator), "stems": cfg.stems, "seed": cfg.seed}
        sep_opts.pop("repo", None)
        separator = _build(
            "separator", cfg.separator, stems=cfg.stems, device=device, seed=cfg.seed
        )
    transcriber = _build("transcriber", cfg.transcriber)
    if hasattr(transcriber, "set_threads"):
        transcriber.set_threads(threads)
    return Stages(
        separator=separator,
        rhythm=_build("rhythm", cfg.rhythm),
        features=_build("features", cfg.features),
        transcriber=transcriber,
        separator_options=sep_opts,
        transcriber_options=_options(cfg.transcriber),
    )


def _options(node: Any) -> dict:
    """A stage group's options as they determine its results (timeouts do not)."""
    raw = asdict(node) if is_dataclass(node) else OmegaConf.to_container(node, resolve=True)
    return {k: v for k, v in raw.items() if k not in ("timeout_s", "skip_stems")}


def _build(group: str, node: Any, **extra: Any) -> Any:
    target = node._target_
    try:
        cls = get_class(target)
    except Exception:
        raise ConfigError(f"{group}._target_", target, "an importable class path") from None
    raw = asdict(node) if is_dataclass(node) else OmegaConf.to_container(node, resolve=True)
    options = {k: v for k, v in raw.items() if k not in PIPELINE_KEYS}
    try:
        return cls(**options, **extra)
    except DidacticError:
        raise
    except TypeError as exc:
        raise ConfigError(
            f"{group}._target_",
            target,
            f"a class accepting {sorted(options) + sorted(extra)} ({exc})",
        ) from None
    except InstantiationException as exc:  # pragma: no cover - only via hydra.utils.instantiate
        raise ConfigError(f"{group}._target_", target, str(exc)) from None
