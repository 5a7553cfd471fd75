"""The paper's SSL models: an explicit registry of aliases.

Each alias names a Hugging Face repository (``hf_id``) that users provide locally (a
folder or their local Hugging Face cache; nothing is ever downloaded). ``format`` says
how the folder is laid out: ``"hf"`` for a transformers folder (``config.json`` plus
``model.safetensors`` / ``pytorch_model.bin``, possibly sharded) and ``"speechbrain"``
for a SpeechBrain inference folder (``hyperparams.yaml``, ``wav2vec2.ckpt``,
``model.ckpt``, ``input_norm.ckpt``, ``label_encoder.txt``).
"""

from __future__ import annotations

from dataclasses import dataclass

FAMILIES = ("wav2vec2", "wavlm", "whisper")  # whisper: branch whisper
FORMATS = ("hf", "speechbrain")

# Files a folder must hold, per format, to count as present (any one of each group).
EXPECTED_FILES: dict[str, tuple[tuple[str, ...], ...]] = {
    "hf": (
        ("config.json",),
        (
            "model.safetensors",
            "model.safetensors.index.json",
            "pytorch_model.bin",
            "pytorch_model.bin.index.json",
        ),
    ),
    "speechbrain": (("wav2vec2.ckpt",), ("model.ckpt",), ("label_encoder.txt",)),
}


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    Parameters
    ----------
    alias : str
        Short name used on the command line and in cache paths (``w2v2-en``).
    hf_id : str
        Hugging Face repository id (``org/name``) the weights come from.
    family : str
        ``"wav2vec2"`` or ``"wavlm"``.
    language : str
        The paper's language code of the pre-training / fine-tuning data.
    format : str
        On-disk layout: ``"hf"`` or ``"speechbrain"``.
    description : str
        One line for ``featstore models``.
    n_layers : int
        Transformer layers (hidden states = ``n_layers + 1``).
    hidden_size : int
        Width of every hidden state.
    """

    alias: str
    hf_id: str
    family: str
    language: str
    format: str
    description: str
    n_layers: int
    hidden_size: int

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"{self.alias}: family {self.family!r} not in {FAMILIES}")
        if self.format not in FORMATS:
            raise ValueError(f"{self.alias}: format {self.format!r} not in {FORMATS}")
        if self.hf_id.count("/") != 1:
            raise ValueError(f"{self.alias}: hf_id {self.hf_id!r} is not 'org/name'")
        if self.n_layers < 1 or self.hidden_size < 1:
            raise ValueError(f"{self.alias}: n_layers and hidden_size must be positive")

    @property
    def n_hidden_states(self) -> int:
        """Hidden states per frame: the transformer input plus one per layer."""
        return self.n_layers + 1

    @property
    def expected_files(self) -> tuple[tuple[str, ...], ...]:
        """Groups of file names a folder of this model must hold (one of each group)."""
        return EXPECTED_FILES[self.format]


MODELS: dict[str, ModelSpec] = {
    "w2v2-cn": ModelSpec(
        alias="w2v2-cn",
        hf_id="TencentGameMate/chinese-wav2vec2-base",
        family="wav2vec2",
        language="cn",
        format="hf",
        description="wav2vec 2.0 base pre-trained on Mandarin (WenetSpeech)",
        n_layers=12,
        hidden_size=768,
    ),
    "w2v2-de": ModelSpec(
        alias="w2v2-de",
        hf_id="facebook/wav2vec2-base-de-voxpopuli-v2",
        family="wav2vec2",
        language="de",
        format="hf",
        description="wav2vec 2.0 base pre-trained on German VoxPopuli",
        n_layers=12,
        hidden_size=768,
    ),
    "w2v2-en": ModelSpec(
        alias="w2v2-en",
        hf_id="facebook/wav2vec2-base-960h",
        family="wav2vec2",
        language="en",
        format="hf",
        description="wav2vec 2.0 base, LibriSpeech 960 h, fine-tuned for ASR (CTC)",
        n_layers=12,
        hidden_size=768,
    ),
    "wavlm-emo": ModelSpec(
        alias="wavlm-emo",
        hf_id="speechbrain/emotion-diarization-wavlm-large",
        family="wavlm",
        language="en",
        format="speechbrain",
        description="WavLM large fine-tuned for speech emotion diarization (SpeechBrain)",
        n_layers=24,
        hidden_size=1024,
    ),
    "wavlm-large": ModelSpec(
        alias="wavlm-large",
        hf_id="microsoft/wavlm-large",
        family="wavlm",
        language="en",
        format="hf",
        description="WavLM large pre-trained on 94k h of English",
        n_layers=24,
        hidden_size=1024,
    ),
    # Whisper hook (branch whisper): the encoders of OpenAI's multilingual Whisper (names and
    # sizes only; never downloaded). Encoder of a 680k h weakly supervised ASR/translation model.
    "whisper-base": ModelSpec(
        alias="whisper-base",
        hf_id="openai/whisper-base",
        family="whisper",
        language="multi",
        format="hf",
        description="Whisper base encoder (30 s log-mel windows), 680k h, 99 languages",
        n_layers=6,
        hidden_size=512,
    ),
    "whisper-small": ModelSpec(
        alias="whisper-small",
        hf_id="openai/whisper-small",
        family="whisper",
        language="multi",
        format="hf",
        description="Whisper small encoder (30 s log-mel windows), 680k h, 99 languages",
        n_layers=12,
        hidden_size=768,
    ),
}
