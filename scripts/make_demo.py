"""Render the bundled demo song (didactic/demo/) from didactic.synth: mix, true stems, MIDI and
ground truth. Run it again only to change the demo; the files are committed."""

from __future__ import annotations

from pathlib import Path

from didactic.synth import SongSpec, render_song, write_song

DEMO_SPEC = SongSpec(
    tempo_bpm=104.0,
    time_signature="4/4",
    n_bars=12,
    leading_silence_s=0.0,
    trailing_s=1.5,
    sr=44100,
    channels=2,
    seed=7,
)

if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "didactic" / "demo"
    paths = write_song(render_song(DEMO_SPEC), out, name="demo", fmt="FLAC")
    print(paths["mix"])
