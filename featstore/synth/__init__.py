"""The eSpeak NG demo corpus (``featstore synth``): Mandarin, German, English and Cantonese
speech in four emotions rendered as prosody, written in ESD's layout or as a manifest."""

from featstore.synth.demo import LAYOUTS, SynthConfig, plan_utterances, render, synthesize_demo
from featstore.synth.espeak import EspeakError, EspeakSynth, Prosody
from featstore.synth.voices import EMOTION_PROSODY, LANGUAGES, SPEAKER_VARIANTS

__all__ = [
    "EMOTION_PROSODY",
    "LANGUAGES",
    "LAYOUTS",
    "SPEAKER_VARIANTS",
    "EspeakError",
    "EspeakSynth",
    "Prosody",
    "SynthConfig",
    "plan_utterances",
    "render",
    "synthesize_demo",
]
