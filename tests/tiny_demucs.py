"""A tiny random-weight HTDemucs saved as a local weights folder.

It exercises the real Demucs loading (``demucs.pretrained.get_model(name, repo=folder)``) and
separation (``demucs.apply.apply_model``) code without network weights; its stems are of
course not musically separated.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import torch
import yaml

SOURCES_4 = ["drums", "bass", "other", "vocals"]
SOURCES_6 = [*SOURCES_4, "guitar", "piano"]


def build_tiny_demucs(
    folder: Path, name: str = "htdemucs", sources: list[str] | None = None, seed: int = 0
) -> Path:
    """Write ``folder/<sig>-<sha8>.th`` and ``folder/<name>.yaml`` (a bag of that one model)."""
    from demucs.htdemucs import HTDemucs
    from demucs.states import save_with_checksum, serialize_model
    from omegaconf import OmegaConf

    torch.manual_seed(seed)
    model = HTDemucs(
        sources=list(sources or SOURCES_4),
        segment=Fraction(39, 5),
        channels=8,
        depth=4,
        t_layers=1,
        t_heads=8,
        t_hidden_scale=1.0,
        bottom_channels=0,
    )
    folder.mkdir(parents=True, exist_ok=True)
    sig = f"tiny{name.replace('_', '')}{seed}"
    package = serialize_model(model, OmegaConf.create({}), half=True)
    save_with_checksum(package, folder / f"{sig}.th")
    (folder / f"{name}.yaml").write_text(yaml.safe_dump({"models": [sig]}))
    return folder


if __name__ == "__main__":
    import sys

    out = build_tiny_demucs(Path(sys.argv[1]))
    build_tiny_demucs(out, "htdemucs_6s", SOURCES_6)
    print(out)
