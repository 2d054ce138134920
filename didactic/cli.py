"""The Hydra entry point: compose, validate, hand over to the runner, report in one line.

A user's mistake (a bad override, value or file) ends the run with exit code 2 and one line on
stderr naming the key, the value and what is allowed. To get that line instead of Hydra's
multi-line report, Hydra is told to let exceptions through (``HYDRA_FULL_ERROR``) and they are
translated here.
"""

from __future__ import annotations

import logging
import os
import sys
from importlib import resources
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from didactic.config import TASK_CHOICES, register_configs
from didactic.errors import ConfigError, DidacticError

log = logging.getLogger(__name__)

_exit_code = 0


def demo_path(name: str) -> str:
    """Path of a file shipped in ``didactic/demo`` (the bundled demo song and its stems)."""
    return str(resources.files("didactic.demo").joinpath(name))


def config_error_from(exc: BaseException) -> ConfigError:
    """Turn a Hydra/OmegaConf composition or validation error into a one-line ConfigError."""
    if isinstance(exc, MissingConfigException) and exc.options is not None:
        group, _, name = (exc.missing_cfg_file or "?").rpartition("/")
        options = sorted(o for o in exc.options if not o.endswith("_schema"))
        return ConfigError(group, name, "one of " + ", ".join(options))
    if isinstance(exc, OverrideParseException):
        return ConfigError(
            "override",
            _first_line(exc).split("'")[1] if "'" in str(exc) else "?",
            f"key=value syntax ({_first_line(exc)})",
        )
    inner = exc
    while inner.__cause__ is not None and not isinstance(inner, OmegaConfBaseException):
        inner = inner.__cause__
    if isinstance(inner, OmegaConfBaseException):
        key = getattr(inner, "full_key", None) or "?"
        msg = _first_line(inner)
        if "missing mandatory value" in msg.lower():
            return ConfigError(key, "???", "a value (it has no default)")
        if "not in struct" in msg or (msg.startswith("Key '") and " not in " in msg):
            return ConfigError(key, _override_value(exc, key), "a known key (see --cfg job)")
        value = getattr(inner, "value", None)
        return ConfigError(key, value, _allowed_from(msg, inner))
    return ConfigError("config", "?", _first_line(exc))


def _override_value(exc: BaseException, key: str) -> object:
    """The value a rejected override gave ``key`` (Hydra's message quotes ``+key=value``)."""
    for line in str(exc).splitlines():
        if f"+{key}=" in line:
            return line.split(f"+{key}=", 1)[1].strip()
    return None


def _allowed_from(msg: str, exc: OmegaConfBaseException) -> str:
    ref = getattr(exc, "ref_type_str", None) or ""
    if "could not be converted to" in msg:
        target = msg.split("could not be converted to")[-1].strip().rstrip(".")
        return f"a value of type {target}"
    if "is not a subclass" in msg or "Invalid type" in msg:
        return f"a value of type {ref or 'the schema type'} ({msg})"
    return msg


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def task_dir(task: str) -> str:
    """The folder under ``outputs/`` for a task's run directories (runs, evaluations)."""
    return {"run": "runs", "evaluate": "evaluations"}.get(str(task), str(task))


@hydra.main(version_base=None, config_path="pkg://didactic.conf", config_name="config")
def _task(cfg: DictConfig) -> None:
    from didactic.runner import run

    global _exit_code
    hc = HydraConfig.get()
    task = cfg.get("task", "run")
    if task not in TASK_CHOICES:
        _fail(str(ConfigError("task", task, "one of " + ", ".join(TASK_CHOICES))), 2)
    if task == "evaluate":
        _evaluate(cfg, Path(hc.runtime.output_dir), Path(hydra.utils.get_original_cwd()))
        return
    try:
        summary = run(cfg, Path(hc.runtime.output_dir), Path(hydra.utils.get_original_cwd()))
    except DidacticError as exc:  # raised here, Hydra would add a line of its own
        _fail(str(exc), exc.exit_code)
    _exit_code = max(_exit_code, summary.exit_code)
    # The one line on stdout: where the results are.
    pending = f", {summary.pending} not processed" if summary.pending else ""
    print(
        f"didactic: {summary.ok} ok, {summary.failed} failed{pending}; "
        f"results in {summary.run_dir}",
        flush=True,
    )


def _evaluate(cfg: DictConfig, out_dir: Path, cwd: Path) -> None:
    """``task=evaluate``: score ``evaluate.run_dir`` against ``evaluate.reference``."""
    from didactic.evaluate import evaluate_run

    conf = OmegaConf.to_object(cfg.evaluate)
    try:  # raised here, Hydra would add a line of its own
        paths = {}
        for key in ("run_dir", "reference"):
            value = getattr(conf, key)
            if value is None:
                raise ConfigError(f"evaluate.{key}", None, "a folder (it has no default)")
            paths[key] = cwd / Path(value).expanduser()
        result = evaluate_run(paths["run_dir"], paths["reference"], out_dir, conf)
    except DidacticError as exc:
        _fail(str(exc), exc.exit_code)
    skipped = f", {result.n_skipped} without reference" if result.n_skipped else ""
    print(f"didactic: evaluated {result.n_songs} songs{skipped}; results in {out_dir}", flush=True)


def main() -> None:
    """Console entry point (``didactic`` and ``python -m didactic``)."""
    os.environ["HYDRA_FULL_ERROR"] = "1"
    register_configs()
    if not OmegaConf.has_resolver("didactic_demo"):
        OmegaConf.register_new_resolver("didactic_demo", demo_path)
    if not OmegaConf.has_resolver("didactic_task_dir"):
        OmegaConf.register_new_resolver("didactic_task_dir", task_dir)
    try:
        _task()
    except DidacticError as exc:
        _fail(str(exc), exc.exit_code)
    except (ConfigCompositionException, OverrideParseException, OmegaConfBaseException) as exc:
        _fail(str(config_error_from(exc)), 2)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except OSError as exc:  # the run directory cannot be created or written
        where = f": {exc.filename}" if exc.filename else ""
        _fail(f"cannot write the run's files ({exc.strerror or exc}{where})", 2)
    sys.exit(_exit_code)


def _fail(message: str, code: int) -> None:
    print(f"didactic: {message}", file=sys.stderr, flush=True)
    sys.exit(code)
