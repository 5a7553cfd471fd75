"""Configuration of an extraction run."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from featstore.cache import DTYPES
from featstore.configs import DEVICE_RULE, check_fields
from featstore.errors import CrosslingError
from featstore.paths import safe_name


class ExtractError(CrosslingError, RuntimeError):
    """An extraction that cannot start or finish (bad request, mismatching cache...)."""


@dataclass(frozen=True)
class ExtractConfig:
    """What to extract, and how.

    Parameters
    ----------
    model : registry alias (``w2v2-cn`` ...), local folder or Hugging Face id in the local cache.
    corpus : prepared corpus name; its manifest is ``featstore.paths.manifest_path(corpus)``.
    cache_root : cache root (default ``$CROSSLING_CACHE`` or ``./cache``).
    model_language : language code for a model outside the registry.
    alias : the model's name everywhere downstream (cache folder ``<root>/<alias>/``,
        provenance, results); default: the registry alias, the name, or the folder's name.
        A model pinned by path keeps this alias.
    max_batch_seconds : cap on a batch's padded audio, seconds (default 64 s).
    max_batch_memory_gb : cap on a batch's estimated peak activation memory, GiB (default 6,
        for a 24 GiB CPU machine; :mod:`featstore.extract._memory`); a clip over it on its
        own runs alone.
    batch_size : cap on clips per batch; 1 forces one clip at a time (default: 1 on CPU,
        no cap on GPU; :func:`~featstore.extract._plan.effective_batch_size`).
    frames : also store frame-level hidden states.
    frame_layers : hidden-state indices stored as frames (default: all).
    dtype : stored float type, ``float16`` (default) or ``float32``.
    device : ``auto`` (CUDA if present, else CPU), ``cpu``, ``cuda``, ``cuda:1`` ...
    shard : (index, count): this run extracts shard ``index`` (0-based) of ``count``.
    strict : fail (non-zero exit) when any utterance could not be extracted.
    overwrite : replace a cache (or unfinished parts) made with other settings.
    wait : wait for another extraction of the same cache instead of refusing.
    max_clip_seconds : clips longer than this run through the model in consecutive
        chunks of this length (frames concatenated, pooled over all of them), so that
        memory stays bounded (default 60 s).
    piece_utts : utterances per crash-safe piece (one part file each); default: about 64
        pieces of 8 to 128 utterances (:func:`auto_piece_utts`).
    n_workers : threads decoding and resampling audio ahead of the model.
    manifest : manifest parquet to read instead of the prepared one.
    out : output file instead of ``featstore.paths.features_path(alias, corpus)``.
    progress : show a progress bar.
    """

    model: str = field(metadata={"help": "Registry alias (`featstore models` lists them all: the paper's w2v2-cn, "
                                         "w2v2-de, w2v2-en, wavlm-emo, wavlm-large, and XLS-R, MMS, HuBERT, "
                                         "data2vec-audio, WavLM base, Whisper), a local model folder, or a Hugging "
                                         "Face id already in the local cache"})
    corpus: str = field(metadata={"help": "Prepared corpus name (manifests/<corpus>.parquet under the cache root)"})
    cache_root: str | Path | None = field(default=None, metadata={
        "help": "Cache root. Default $CROSSLING_CACHE or ./cache."})
    model_language: str | None = field(default=None, metadata={
        "help": "Language code of a model outside the registry (cn, de, en ...). Default: from the registry."})
    alias: str | None = field(default=None, metadata={
        "help": "The model's name in the cache folder and results when --model is a folder (a study names it "
                "so). Default: the registry alias, else the folder's name."})
    max_batch_seconds: float = field(default=64.0, metadata={
        "help": "Cap on a batch's padded audio, in seconds.", "gt": 0})
    max_batch_memory_gb: float = field(default=6.0, metadata={
        "help": "Cap on a batch's estimated peak activation memory, in GiB (sized for a 24 GiB CPU machine; "
                "docs/large-models.md). A clip over it on its own runs alone.", "gt": 0})
    batch_size: int | None = field(default=None, metadata={
        "help": "Cap on clips per batch; 1 = one clip at a time. Default: 1 on CPU (batches only add padding "
                "there), no cap on GPU.", "min": 1})
    frames: bool = field(default=False, metadata={
        "help": "Also store frame-level hidden states (about 1 MB per second of audio for a base model in "
                "float16); without it: pooled mean/std only."})
    frame_layers: tuple[int, ...] | None = field(default=None, metadata={
        "help": "With --frames: only these hidden states, e.g. 0,6,12. Default: all."})
    dtype: str = field(default="float16", metadata={"help": "Stored float type: float16 or float32.",
                                                    "choices": DTYPES})
    device: str = field(default="auto", metadata={"help": "auto (CUDA if present, else CPU), cpu, cuda, cuda:1 ...",
                                                  **DEVICE_RULE})
    shard: tuple[int, int] = field(default=(0, 1), metadata={
        "help": "I/N: extract shard I (0-based) of N, split by cumulative duration, into "
                "<corpus>.shard-I-of-N.h5; auto: from RANK/WORLD_SIZE (torchrun) or SLURM array variables."})
    strict: bool = field(default=False, metadata={
        "help": "Exit with code 1 when any utterance could not be extracted; without it: record, list and go on."})
    overwrite: bool = field(default=False, metadata={
        "help": "Re-extract when the cache (or an unfinished run) was made with other settings; without it: "
                "refuse."})
    wait: bool = field(default=False, metadata={
        "help": "Wait for another extraction of the same cache instead of refusing."})
    max_clip_seconds: float = field(default=60.0, metadata={
        "help": "Longer clips run through the model in consecutive chunks of this length, in seconds.", "min": 1})
    piece_utts: int | None = field(default=None, metadata={
        "help": "Utterances per crash-safe piece (one part file each). Default: about 64 pieces of 8 to 128 "
                "utterances.", "min": 1})
    n_workers: int = field(default=2, metadata={"help": "Threads decoding audio ahead of the model.", "min": 1})
    manifest: str | Path | None = field(default=None, metadata={
        "help": "Manifest parquet to read instead of the prepared one."})
    out: str | Path | None = field(default=None, metadata={
        "help": "Output file. Default <cache-root>/<model>/<corpus>.h5."})
    progress: bool = field(default=True, metadata={"help": "Show a progress bar."})

    def __post_init__(self) -> None:
        check_fields(self)
        if self.alias is not None:
            safe_name(self.alias)
        if self.max_batch_seconds <= 0:
            raise ValueError(f"max_batch_seconds must be > 0, got {self.max_batch_seconds}")
        if self.max_batch_memory_gb <= 0:
            raise ValueError(f"max_batch_memory_gb must be > 0, got {self.max_batch_memory_gb}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        index, count = self.shard
        if not (count >= 1 and 0 <= index < count):
            raise ValueError(f"shard must be I/N with 0 <= I < N, got {index}/{count}")
        if self.max_clip_seconds < 1:
            raise ValueError(f"max_clip_seconds must be >= 1, got {self.max_clip_seconds}")
        if (self.piece_utts is not None and self.piece_utts < 1) or self.n_workers < 1:
            raise ValueError("piece_utts and n_workers must be >= 1")
        if self.frame_layers is not None:
            if not self.frames:
                raise ValueError("ExtractConfig.frame_layers: given without ExtractConfig.frames (frames of chosen "
                                 "layers are stored only when frames are)")
            if len(set(self.frame_layers)) != len(self.frame_layers) or min(self.frame_layers, default=0) < 0:
                raise ValueError(f"ExtractConfig.frame_layers: must be distinct non-negative indices, got "
                                 f"{self.frame_layers}")
            object.__setattr__(self, "frame_layers", tuple(sorted(self.frame_layers)))


def parse_shard(text: str, env: dict | None = None) -> tuple[int, int]:
    """``"I/N"`` (0-based ``I``), or ``"auto"``: ``RANK``/``WORLD_SIZE`` (torchrun), else
    ``SLURM_ARRAY_TASK_ID``/``SLURM_ARRAY_TASK_COUNT``, else ``SLURM_PROCID``/``SLURM_NTASKS``,
    else ``0/1``."""
    env = os.environ if env is None else env
    if text == "auto":
        for rank, size in (("RANK", "WORLD_SIZE"), ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"),
                           ("SLURM_PROCID", "SLURM_NTASKS")):
            if rank in env and size in env:
                return int(env[rank]), int(env[size])
        return 0, 1
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must be I/N (e.g. 0/4) or auto, got {text!r}") from None
    if not (count >= 1 and 0 <= index < count):
        raise ValueError(f"--shard {text}: need 0 <= I < N")
    return index, count


def shard_file_name(corpus: str, shard: tuple[int, int]) -> str:
    """``<corpus>.h5`` for a whole corpus, ``<corpus>.shard-I-of-N.h5`` for a shard."""
    index, count = shard
    return f"{corpus}.h5" if count == 1 else f"{corpus}.shard-{index}-of-{count}.h5"
