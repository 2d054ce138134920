"""Building the stage objects from the config, once per process.

Each stage class is named by its group's ``_target_`` and built with the group's options except
the ones the pipeline consumes itself (:data:`~didactic.config.PIPELINE_KEYS`). Separators also
get ``stems``, ``device`` and ``seed``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

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


STAGE_GROUPS = ("separator", "rhythm", "features", "transcriber")


def stage_groups(cfg: DictConfig) -> dict[str, dict]:
    """Each stage group's options as plain dicts, including keys a user added for their own
    class (``+separator.my_option=1``), which the typed schema objects do not carry."""
    return {g: OmegaConf.to_container(cfg[g], resolve=True) for g in STAGE_GROUPS}


def build_stages(cfg: Config, groups: dict[str, dict], threads: int = 1) -> Stages:
    """Instantiate every stage of a validated config; ``groups`` from :func:`stage_groups`.

    ``threads`` is this process's share of the cores, handed to the model runtimes.
    """
    device = resolve_device(cfg.device)
    if cfg.stems == 0:
        separator: Separator = NoSeparator()
        sep_opts: dict = {"_target_": "none"}
    else:
        # The weights' identity (model_id) stands for `repo`: moving the folder keeps the cache.
        sep_opts = {**_options(groups["separator"]), "stems": cfg.stems, "seed": cfg.seed}
        sep_opts.pop("repo", None)
        separator = _build(
            "separator", groups["separator"], stems=cfg.stems, device=device, seed=cfg.seed
        )
    transcriber = _build("transcriber", groups["transcriber"])
    if hasattr(transcriber, "set_threads"):
        transcriber.set_threads(threads)
    return Stages(
        separator=separator,
        rhythm=_build("rhythm", groups["rhythm"]),
        features=_build("features", groups["features"]),
        transcriber=transcriber,
        separator_options=sep_opts,
        transcriber_options=_options(groups["transcriber"]),
    )


def _options(node: dict) -> dict:
    """A stage group's options as they determine its results (timeouts do not)."""
    return {k: v for k, v in node.items() if k not in PIPELINE_KEYS or k == "_target_"}


def _build(group: str, node: dict, **extra: Any) -> Any:
    target = node["_target_"]
    try:
        cls = get_class(target)
    except Exception:
        raise ConfigError(f"{group}._target_", target, "an importable class path") from None
    options = {k: v for k, v in node.items() if k not in PIPELINE_KEYS}
    try:
        return cls(**options, **extra)
    except DidacticError:
        raise
    except TypeError as exc:
        accepted = sorted(options) + sorted(extra)
        raise ConfigError(
            f"{group}._target_", target, f"a class accepting {accepted} ({exc})"
        ) from None
