"""Languages, sentences, speakers and emotional prosody of the demo corpus."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featstore.synth.espeak import Prosody


@dataclass(frozen=True)
class DemoLanguage:
    """One language of the demo corpus.

    Attributes
    ----------
    code : str
        The project's language code (``cn``, ``de``, ``en``, ``yue``).
    voice : str
        eSpeak NG voice.
    first_speaker : int
        Number of the first speaker folder (ESD numbering: Mandarin from 0001, English
        from 0011, so the ESD reader knows their language; others need ``language``).
    sentences : tuple[str, ...]
        Sentences in the language's own script; every speaker says them in every emotion.
    """

    code: str
    voice: str
    first_speaker: int
    sentences: tuple[str, ...]


LANGUAGES: dict[str, DemoLanguage] = {
    "cn": DemoLanguage("cn", "cmn", 1, (
        "今天的天气非常好。",
        "我们明天早上八点出发。",
        "这本书放在桌子上面。",
        "他刚刚给我打了电话。",
        "请把窗户关上好吗？",
        "火车已经到站了。",
        "晚饭我们吃面条吧。",
        "你看见我的钥匙了吗？",
    )),
    "de": DemoLanguage("de", "de", 21, (
        "Das Wetter ist heute sehr schön.",
        "Wir fahren morgen früh um acht Uhr los.",
        "Das Buch liegt auf dem Tisch.",
        "Er hat mich gerade angerufen.",
        "Kannst du bitte das Fenster schließen?",
        "Der Zug ist schon angekommen.",
        "Heute Abend essen wir Nudeln.",
        "Hast du meinen Schlüssel gesehen?",
    )),
    "en": DemoLanguage("en", "en", 11, (
        "The weather is really nice today.",
        "We are leaving tomorrow at eight.",
        "The book is lying on the table.",
        "He has just called me on the phone.",
        "Could you please close the window?",
        "The train has already arrived.",
        "Let us have noodles for dinner tonight.",
        "Have you seen my keys anywhere?",
    )),
    # Cantonese: the stand-in for the paper's Tianjin dialect (a Chinese variety with its
    # own tones), written in traditional characters and colloquial Cantonese words.
    "yue": DemoLanguage("yue", "yue", 31, (
        "今日天氣好好。",
        "我哋聽朝八點出發。",
        "嗰本書喺枱面上。",
        "佢啱啱打電話畀我。",
        "唔該你閂埋個窗吖。",
        "火車已經到咗站。",
        "今晚我哋食麵啦。",
        "你有冇見到我條鎖匙？",
    )),
}
"""Language code -> its voice and sentences (the demo's four languages)."""

SPEAKER_VARIANTS: tuple[tuple[str, str], ...] = (
    ("m1", "M"), ("f1", "F"), ("m3", "M"), ("f3", "F"), ("m2", "M"), ("f2", "F"), ("m4", "M"), ("f4", "F"),
)
"""eSpeak NG voice variants used as speakers, with their gender, in speaker order."""

EMOTION_PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(rate_wpm=170, pitch=55, pitch_range=30, volume=100),
    "angry": Prosody(rate_wpm=260, pitch=72, pitch_range=100, volume=160),
    "happy": Prosody(rate_wpm=210, pitch=100, pitch_range=75, volume=125),
    "sad": Prosody(rate_wpm=100, pitch=40, pitch_range=0, volume=60),
}
"""Emotion as prosody, exaggerated so that each emotion sits apart on eSpeak NG's scales:
sad slowest, lowest (not so low that a male voice drops below 60 Hz), monotone and quiet; neutral moderate; angry fastest and loudest with
the widest pitch range; happy fast with the highest pitch. Pitch level and range are what
a wav2vec 2.0 front end can see (its group norm removes loudness, mean pooling most of
the rate), so they carry the largest differences."""

EMOTION_TILT: dict[str, float] = {"neutral": -0.3, "angry": 0.9, "happy": 0.4, "sad": -0.85}
"""Emotion as voice quality: a first-order spectral tilt applied after synthesis (loudness
kept), spread evenly from tense to lax. Positive ``a``: pre-emphasis
``y[n] = x[n] - a x[n-1]`` (tense voice, more energy at high frequencies: angry most,
happy less); negative ``-b``: a one-pole low-pass ``y[n] = (1 - b) x[n] + b y[n-1]``
(lax, darker voice: neutral a little, sad most); 0 would leave eSpeak NG's voice as is."""

ESD_INDEX_BASE: dict[str, int] = {"neutral": 0, "angry": 350, "happy": 700, "sad": 1050}
"""ESD numbers an emotion's files from base+1 (000001-000350 Neutral, 000351- Angry ...)."""

ESD_FOLDERS: dict[str, str] = {"neutral": "Neutral", "angry": "Angry", "happy": "Happy", "sad": "Sad"}
TRANSCRIPT_LABELS: dict[str, dict[str, str]] = {
    # real ESD Mandarin transcripts name the emotion in Chinese
    "cn": {"neutral": "中立", "angry": "生气", "happy": "快乐", "sad": "伤心"},
}


def apply_tilt(wave: np.ndarray, tilt: float) -> np.ndarray:
    """``wave`` (float samples) with the spectral tilt of :data:`EMOTION_TILT`, rescaled to
    its original RMS level, so loudness stays the prosody's."""
    from scipy.signal import lfilter

    if not -1.0 < tilt < 1.0:
        raise ValueError(f"tilt must be in (-1, 1), got {tilt}")
    if tilt == 0.0 or not wave.size:
        return wave
    x = wave.astype(np.float64)
    y = lfilter([1.0, -tilt], [1.0], x) if tilt > 0 else lfilter([1.0 + tilt], [1.0, tilt], x)
    before, after = float(np.sqrt(np.mean(x ** 2))), float(np.sqrt(np.mean(y ** 2)))
    return (y * (before / after if after > 0 else 1.0)).astype(wave.dtype)


def speaker_offsets(rng: np.random.Generator) -> tuple[float, float]:
    """A speaker's habitual rate factor and pitch offset (so variants differ beyond timbre)."""
    return float(rng.uniform(0.94, 1.06)), float(rng.uniform(-6.0, 6.0))


def jittered(base: Prosody, rate_factor: float, pitch_offset: float, rng: np.random.Generator) -> Prosody:
    """The emotion's prosody for one utterance: the speaker's habits plus a small random jitter
    (rate +-4 %, pitch +-3, range +-4, volume +-5 % as standard deviations)."""
    def clip(value: float, low: int, high: int) -> int:
        return int(round(min(max(value, low), high)))

    return Prosody(
        rate_wpm=clip(base.rate_wpm * rate_factor * (1.0 + 0.04 * rng.standard_normal()), 80, 450),
        pitch=clip(base.pitch + pitch_offset + 3.0 * rng.standard_normal(), 0, 100),
        pitch_range=clip(base.pitch_range + 4.0 * rng.standard_normal(), 0, 100),
        volume=clip(base.volume * (1.0 + 0.05 * rng.standard_normal()), 0, 200),
    )
