"""``featstore synth``: make the eSpeak NG demo corpus."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from featstore.console import error_message, fail, print_line
from featstore.synth import LANGUAGES, EspeakError, SynthConfig, synthesize_demo


def synth(
    out: Annotated[Optional[Path], typer.Option(help="Output folder (one sub-folder per language). Default <cache root>/demo ($CROSSLING_CACHE or ./cache).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of speaker habits, prosody jitter and eSpeak NG's noise; the same seed gives the same bytes.")] = 0,
    per_emotion: Annotated[int, typer.Option("--per-emotion", help="Utterances per speaker and emotion (1-350).")] = 8,
    n_speakers: Annotated[int, typer.Option("--n-speakers", help="Voice variants (speakers) per language (1-8).")] = 5,
    language: Annotated[Optional[list[str]], typer.Option("--language", help=f"Language to make (repeatable), among {', '.join(LANGUAGES)}. Default: all four.")] = None,
    layout: Annotated[str, typer.Option(help="esd: ESD's folders <lang>/<spk>/<Emotion>/<spk>_<NNNNNN>.wav; manifest: <lang>/wav/*.wav. Both write <lang>/manifest.csv.")] = "esd",
    sample_rate_hz: Annotated[int, typer.Option("--sample-rate-hz", help="Sample rate of the wav files in Hz.")] = 16000,
) -> None:
    """Make the multilingual demo corpus (Mandarin, German, English, Cantonese; four emotions
    rendered as prosody) with eSpeak NG, in ESD's layout or as a manifest."""
    try:
        config = SynthConfig(
            out=out, seed=seed, per_emotion=per_emotion, n_speakers=n_speakers,
            languages=tuple(language) if language else SynthConfig().languages,
            layout=layout, sample_rate_hz=sample_rate_hz,
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    start = time.perf_counter()
    try:
        folders = synthesize_demo(config, progress=True)
    except (EspeakError, OSError) as err:  # OSError: a foreign folder, --out not writable
        fail(error_message(err))
    elapsed_s = time.perf_counter() - start
    print_line(f"{config.n_utterances} utterances in {elapsed_s:.1f} s ({config.layout} layout):")
    for code, folder in folders.items():
        name = f"--name demo-{code}"
        how = (f"featstore prepare esd --root {folder} {name}" + ("" if code in ("cn", "en") else f" --language {code}")
               if config.layout == "esd" else f"featstore prepare table --root {folder / 'manifest.csv'} {name}")
        print_line(f"  {code}: {folder}   (read with: {how})")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("synth")(synth)
