"""eSpeak NG through ctypes, from the library and voices that ``espeakng-loader`` ships.

Why a private copy of the library per utterance: libespeak-ng keeps state in static
variables (pitch flutter phase, random generator, buffers) that survives
``espeak_Terminate``, so the same text gives slightly different samples depending on what
was spoken before. Loading a fresh copy of the shared object (copied once into a temporary
folder, ``dlopen``/``dlclose`` per utterance, about 2 ms) and seeding its random generator
(``espeak_ng_SetRandSeed``) makes every utterance depend only on its text, voice,
prosody and seed: the same bytes in any order, in any process.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_DONT_EXIT = 0x8000
CHARS_UTF8 = 1
POS_CHARACTER = 1
# espeak_PARAMETER values from speak_lib.h
PARAM_RATE, PARAM_VOLUME, PARAM_PITCH, PARAM_RANGE = 1, 2, 3, 4

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakError(RuntimeError):
    """eSpeak NG is missing, cannot start, or lacks a voice."""


@dataclass(frozen=True)
class Prosody:
    """eSpeak NG's prosody parameters.

    Attributes
    ----------
    rate_wpm : int
        Speaking rate in words per minute (eSpeak: 80-450, default 175).
    pitch : int
        Base pitch, 0-100 (default 50).
    pitch_range : int
        Pitch range, 0-100 (default 50; 0 is monotone).
    volume : int
        Amplitude, 0-200 (default 100).
    """

    rate_wpm: int = 175
    pitch: int = 50
    pitch_range: int = 50
    volume: int = 100

    def __post_init__(self) -> None:
        for name, low, high in (("rate_wpm", 80, 450), ("pitch", 0, 100), ("pitch_range", 0, 100),
                                ("volume", 0, 200)):
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name}={value} outside eSpeak NG's {low}-{high}")


def _locate() -> tuple[Path, Path]:
    try:
        import espeakng_loader
    except ImportError as err:
        raise EspeakError(
            "the demo corpus needs eSpeak NG from the `espeakng-loader` package: pip install espeakng-loader"
        ) from err
    try:
        library, data = Path(espeakng_loader.get_library_path()), Path(espeakng_loader.get_data_path())
    except RuntimeError as err:
        raise EspeakError(f"espeakng-loader has no eSpeak NG data: {err}") from err
    if not library.is_file():
        raise EspeakError(f"espeakng-loader's eSpeak NG library is missing: {library}")
    return library, data


class EspeakSynth:
    """Synthesise utterances with eSpeak NG; use as a context manager.

    Parameters
    ----------
    library_path, data_path : Path, optional
        ``libespeak-ng`` and its ``espeak-ng-data`` folder; default: espeakng-loader's.
    """

    def __init__(self, library_path: Path | None = None, data_path: Path | None = None) -> None:
        self._library_path = library_path
        self._data_path = data_path
        self._copy: Path | None = None
        self._tmp: str | None = None

    def __enter__(self) -> EspeakSynth:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the private copy of the library."""
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp, self._copy = None, None

    def _private_library(self) -> Path:
        if self._copy is None:
            if self._library_path is None or self._data_path is None:
                library, data = _locate()
                self._library_path = self._library_path or library
                self._data_path = self._data_path or data
            if not Path(self._library_path).is_file():
                raise EspeakError(f"eSpeak NG library not found: {self._library_path}")
            if not Path(self._data_path).is_dir():
                raise EspeakError(f"eSpeak NG data folder not found: {self._data_path}")
            self._tmp = tempfile.mkdtemp(prefix="featstore-espeak-")
            self._copy = Path(self._tmp) / f"private-{Path(self._library_path).name}"
            shutil.copyfile(self._library_path, self._copy)
        return self._copy

    def synthesize(self, text: str, voice: str, prosody: Prosody, seed: int) -> tuple[np.ndarray, int]:
        """Speak ``text``.

        Parameters
        ----------
        text : str
            UTF-8 text in the voice's language.
        voice : str
            eSpeak NG voice name, optionally with a variant (``cmn+f2``, ``de+m1``).
        prosody : Prosody
            Rate, pitch, range and volume.
        seed : int
            Seed of eSpeak NG's own random generator (non-negative).

        Returns
        -------
        (numpy.ndarray, int)
            int16 samples ``(n_samples,)`` and the sample rate in Hz (22050 for eSpeak NG).
        """
        path = self._private_library()
        lib = ctypes.CDLL(str(path), mode=getattr(os, "RTLD_LOCAL", 0))
        chunks: list[np.ndarray] = []

        def collect(wav: ctypes.POINTER(ctypes.c_short), n_samples: int, events: ctypes.c_void_p) -> int:
            if n_samples > 0:
                chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
            return 0

        callback = _CALLBACK(collect)
        try:
            lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
            sample_rate_hz = lib.espeak_Initialize(
                AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self._data_path).encode(), INITIALIZE_DONT_EXIT
            )
            if sample_rate_hz <= 0:
                raise EspeakError(f"eSpeak NG could not start with its data in {self._data_path}")
            lib.espeak_SetSynthCallback(callback)
            lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise EspeakError(f"eSpeak NG has no voice {voice!r} (data in {self._data_path})")
            for param, value in ((PARAM_RATE, prosody.rate_wpm), (PARAM_VOLUME, prosody.volume),
                                 (PARAM_PITCH, prosody.pitch), (PARAM_RANGE, prosody.pitch_range)):
                lib.espeak_SetParameter(param, int(value), 0)
            if hasattr(lib, "espeak_ng_SetRandSeed"):
                lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
                lib.espeak_ng_SetRandSeed(int(seed))
            data = text.encode("utf-8") + b"\0"
            lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                         ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
            status = lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
            if status != 0:
                raise EspeakError(f"eSpeak NG failed (status {status}) on {text!r} with voice {voice!r}")
            lib.espeak_Synchronize()
            lib.espeak_Terminate()
        finally:
            _unload(lib)
        samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        if samples.size == 0:
            raise EspeakError(f"eSpeak NG produced no audio for {text!r} with voice {voice!r}")
        return samples.astype(np.int16, copy=False), int(sample_rate_hz)


def _unload(lib: ctypes.CDLL) -> None:
    """Unload the private copy so that the next utterance starts from fresh static state."""
    import _ctypes

    close = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary", None)
    if close is not None:
        close(lib._handle)
