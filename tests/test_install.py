"""didactic installed as a wheel (non-editable) still finds its configs and demo, from any cwd."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("didactic-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "didactic/conf/config.yaml" in names and "didactic/conf/separator/demucs.yaml" in names
    assert "didactic/demo/demo.flac" in names
    site = out / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return site


def _env(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return {**env, "PYTHONPATH": str(site)}


def test_module_and_script_run_from_the_wheel(wheel_site: Path, tmp_path: Path) -> None:
    env = _env(wheel_site)
    where = subprocess.run(
        [sys.executable, "-c", "import didactic; print(didactic.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(wheel_site))
    res = subprocess.run(
        [sys.executable, "-m", "didactic", "song=x.wav", "separator=precomputed", "--cfg", "job"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "_target_: didactic.stages.separate.PrecomputedSeparator" in res.stdout
    script = wheel_site / "bin" / "didactic"
    res = subprocess.run(
        [sys.executable, str(script), "song=", "hydra.run.dir=" + str(tmp_path / "r")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2 and res.stderr.startswith("didactic: config error: song=")
