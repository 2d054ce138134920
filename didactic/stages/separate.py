"""Source separation: Demucs in-process, stems a user already has, or none.

Every separator is a class whose instance is built once per process (it may hold a model) and
called once per song: ``separator(song) -> {stem name: Audio}``, stems at the song's native rate.
It is built with its config group's options plus ``stems``, ``device`` and ``seed``, so a user's
own class (``separator._target_=my_pkg.MySeparator``) takes the same arguments.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from didactic.audio import AUDIO_EXTENSIONS, Audio, read_audio
from didactic.errors import ConfigError, StageError

log = logging.getLogger(__name__)

# stems -> (default Demucs model, the stems it yields)
DEMUCS_MODELS = {
    4: ("htdemucs", ("drums", "bass", "other", "vocals")),
    6: ("htdemucs_6s", ("drums", "bass", "other", "vocals", "guitar", "piano")),
    2: ("htdemucs", ("vocals", "accompaniment")),
}
MIX_STEM = "mix"


@dataclass
class SongAudio:
    """A decoded song as the separator sees it."""

    song_id: str
    path: Path
    audio: Audio
    stems_dir: Path | None = None  # a manifest's per-song stems folder


class Separator(Protocol):
    """What the pipeline calls; see the module docstring."""

    def __call__(self, song: SongAudio) -> dict[str, Audio]: ...


class NoSeparator:
    """The mix is the one stem (``stems=0``)."""

    model_id = "none"
    cacheable = False

    def __init__(self, stems: int | None = None, device: str = "cpu", seed: int = 0) -> None:
        del stems, device, seed

    def __call__(self, song: SongAudio) -> dict[str, Audio]:
        return {MIX_STEM: song.audio}


class DemucsSeparator:
    """Demucs through :func:`demucs.apply.apply_model`, the model loaded once.

    Parameters
    ----------
    model
        Model or bag name; default from ``stems`` (4: htdemucs, 6: htdemucs_6s, 2: htdemucs
        with the non-vocal stems summed into ``accompaniment``).
    repo
        Local folder of weights (``NAME.yaml`` and ``SIG-xxxxxxxx.th`` files): never touches the
        network. Without it Demucs downloads the released weights on first use.
    shifts, overlap, segment
        As in Demucs' own CLI. Shifts are drawn from a generator seeded with ``seed`` so the same
        song gives the same stems.
    """

    def __init__(
        self,
        model: str | None = None,
        repo: str | None = None,
        shifts: int = 1,
        overlap: float = 0.25,
        segment: float | None = None,
        *,
        stems: int | None = 4,
        device: str = "cpu",
        seed: int = 0,
    ) -> None:
        stems = 4 if stems is None else stems
        if stems not in DEMUCS_MODELS:
            raise ConfigError("stems", stems, "2, 4 or 6 with separator=demucs (0: no separation)")
        default_model, self.stem_names = DEMUCS_MODELS[stems]
        self.name = model or default_model
        self.shifts, self.overlap, self.segment = shifts, overlap, segment
        self.device, self.seed, self.n_stems = device, seed, stems
        self.model = _load_demucs(self.name, repo)
        sources = tuple(self.model.sources)
        needed = ("vocals",) if stems == 2 else self.stem_names
        missing = [s for s in needed if s not in sources]
        if missing or (stems != 2 and len(sources) != stems):
            raise ConfigError(
                "separator.model",
                self.name,
                f"a model with the {stems} stems {', '.join(needed)} (it has {', '.join(sources)})",
            )
        max_segment = float(getattr(self.model, "max_allowed_segment", float("inf")))
        if segment is not None and segment > max_segment:
            raise ConfigError(
                "separator.segment", segment, f"at most {max_segment:g} s for {self.name}"
            )
        self.model_id = _model_id(self.name, repo)
        log.info("loaded Demucs model %s (%s) on %s", self.name, ", ".join(sources), device)

    def __call__(self, song: SongAudio) -> dict[str, Audio]:
        import torch
        from demucs.apply import apply_model
        from demucs.audio import convert_audio_channels

        sr = int(self.model.samplerate)
        wav = torch.from_numpy(song.audio.resampled(sr).copy())
        wav = convert_audio_channels(wav, self.model.audio_channels)
        ref = wav.mean(0)
        mean, std = ref.mean(), ref.std().clamp_min(1e-8)
        # Demucs draws its random shifts from Python's `random`; seed it so runs are repeatable.
        random.seed(self.seed)
        torch.manual_seed(self.seed)
        with torch.inference_mode():
            out = apply_model(
                self.model,
                ((wav - mean) / std)[None],
                shifts=self.shifts,
                split=True,
                overlap=self.overlap,
                segment=self.segment,
                device=self.device,
                progress=False,
            )[0]
        out = (out * std + mean).cpu().numpy()
        by_name = dict(zip(self.model.sources, out, strict=True))
        if self.n_stems == 2:
            vocals = by_name.pop("vocals")
            by_name = {"vocals": vocals, "accompaniment": np.sum(list(by_name.values()), axis=0)}
        channels = 1 if song.audio.channels == 1 else out.shape[1]
        stems = {}
        for name in self.stem_names:
            x = by_name[name]
            x = x.mean(axis=0, keepdims=True) if channels == 1 else x
            stems[name] = Audio(_to_rate(x, sr, song.audio.sr, song.audio.n_samples), song.audio.sr)
        return stems


class PrecomputedSeparator:
    """Stems already on disk: one audio file per stem in a folder, named by the stem.

    ``path`` is a folder or a pattern with ``{song_dir}``, ``{song_stem}`` and ``{song_id}``.
    Every stem must have the mix's sample rate and length; ``stems`` (when set) is the number of
    stems the folder must hold.
    """

    model_id = "precomputed"
    cacheable = False  # reading the files is the computation

    def __init__(
        self,
        path: str = "{song_dir}/{song_stem}_stems",
        *,
        stems: int | None = None,
        device: str = "cpu",
        seed: int = 0,
    ) -> None:
        del device, seed
        self.path, self.n_stems = path, stems

    def folder_for(self, song_path: Path, song_id: str) -> Path:
        try:
            text = self.path.format(
                song_dir=song_path.parent, song_stem=song_path.stem, song_id=song_id
            )
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                "separator.path",
                self.path,
                f"a folder or a pattern using {{song_dir}}, {{song_stem}}, {{song_id}} ({exc})",
            ) from None
        return Path(text)

    def __call__(self, song: SongAudio) -> dict[str, Audio]:
        folder = song.stems_dir or self.folder_for(song.path, song.song_id)
        if not folder.is_dir():
            raise StageError("separate", f"{song.path}: stems folder {folder} does not exist")
        files = sorted(
            p
            for p in folder.iterdir()
            if p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".")
        )
        if not files:
            raise StageError("separate", f"{song.path}: no audio files in stems folder {folder}")
        if self.n_stems and len(files) != self.n_stems:
            raise StageError(
                "separate",
                f"{song.path}: stems={self.n_stems} but {folder} holds {len(files)} stems",
            )
        stems: dict[str, Audio] = {}
        for f in files:
            a = read_audio(f)
            if a.sr != song.audio.sr or a.n_samples != song.audio.n_samples:
                raise StageError(
                    "separate",
                    f"stem {f}: {a.n_samples} samples at {a.sr} Hz, but the mix {song.path} has "
                    f"{song.audio.n_samples} at {song.audio.sr} Hz",
                )
            stems[f.stem] = a
        return stems


def _to_rate(x: np.ndarray, sr: int, target_sr: int, n: int) -> np.ndarray:
    """Resample ``(channels, m)`` to ``target_sr`` and fit it to exactly ``n`` samples."""
    if sr != target_sr:
        x = Audio(x, sr).resampled(target_sr)
    if x.shape[1] >= n:
        return x[:, :n]
    return np.pad(x, ((0, 0), (0, n - x.shape[1])))


def _load_demucs(name: str, repo: str | None):
    from demucs.pretrained import get_model

    how = f"put {name}.yaml and its .th weight files in a folder and pass separator.repo=FOLDER"
    try:
        # Downloads print progress on stdout, which carries only the run's result line.
        with contextlib.redirect_stdout(sys.stderr):
            model = get_model(name, repo=Path(repo) if repo else None)
    except SystemExit as exc:  # demucs calls fatal() (sys.exit) for some repo problems
        raise ConfigError("separator.model", name, f"cannot be loaded ({exc}); {how}") from None
    except Exception as exc:
        where = f"from {repo}" if repo else "(download failed or no network)"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            "separator.model", name, f"weights not found {where}: {reason}; {how}"
        ) from None
    return model


def _model_id(name: str, repo: str | None) -> str:
    """Identity of the weights: the name plus, for a local folder, the weight files' names
    (Demucs appends a checksum prefix to each) and the bag file's bytes."""
    if not repo:
        return f"demucs:{name}"
    folder = Path(repo)
    parts = [p.name for p in sorted(folder.glob("*.th"))]
    bag = folder / f"{name}.yaml"
    if bag.is_file():
        parts.append(hashlib.sha256(bag.read_bytes()).hexdigest()[:16])
    return f"demucs:{name}:" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
