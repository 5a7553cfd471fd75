"""SSL models: an explicit registry of model families (``FAMILIES``) and of aliases (``MODELS``).

A family (``FAMILIES[model_type]``) says, by name only (this module imports neither torch
nor transformers), which transformers classes build its encoder, which checkpoint prefix
wraps it, where its transformer layers, attention and feed-forward modules are, and which
variant of the forward pass it needs (``featstore.forward``). A new family is one entry.

Each alias names a Hugging Face repository (``hf_id``) that users provide locally (a
folder or their local Hugging Face cache; nothing is ever downloaded). ``format`` says
how the folder is laid out: ``"hf"`` for a transformers folder (``config.json`` plus
``model.safetensors`` / ``pytorch_model.bin``, possibly sharded) and ``"speechbrain"``
for a SpeechBrain inference folder (``hyperparams.yaml``, ``wav2vec2.ckpt``,
``model.ckpt``, ``input_norm.ckpt``, ``label_encoder.txt``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MULTILINGUAL = "mul"
"""``language`` of a model pre-trained on many languages (ISO 639-2 "multiple languages")."""


@dataclass(frozen=True)
class FamilySpec:
    """One model family: how to build, load and run its encoder (names only, no imports).

    Parameters
    ----------
    model_type : str
        ``config.json``'s ``model_type`` (``"hubert"``, ``"data2vec-audio"`` ...).
    model_class, config_class : str
        transformers class names of the bare encoder and its config (a name exported by
        ``transformers``, or a full ``transformers.models....Class`` path).
    weight_prefix : str
        Prefix of the encoder's keys inside task / pre-training checkpoints
        (``"hubert."`` in ``HubertForCTC``); stripped when loading.
    ctc_class : str
        transformers class with a CTC head (tiny test models in that format); ``""``: none.
    pretraining_class : str
        transformers pre-training class, ``""`` when transformers has none.
    layers : str
        Attribute path of the transformer layers inside the encoder.
    attention, feed_forward : str
        Attribute of the attention / feed-forward module inside one layer.
    attention_projections, feed_forward_projections : tuple of str
        Linear modules inside them (what LoRA adapts).
    layer_mask : str
        What each layer takes as ``attention_mask``: ``"additive"`` (transformers'
        bidirectional 4-D mask) or ``"bool"`` (WavLM's (B, T) frame mask).
    positional : str
        ``"conv"`` (one grouped convolution, optionally batch-normed first), ``"conv-stack"``
        (data2vec-audio: several convolution + layer-norm + GELU blocks) or
        ``"conv+relative"`` (WavLM: a convolution plus layer 0's relative position bias).
    front_end_norm : str
        ``""``: the config's ``feat_extract_norm`` says (``"group"``/``"layer"``); else the
        family's fixed front-end normalisation (data2vec-audio: ``"layer"``).
    forward_module : str
        Module implementing the exact forward pass for this family (``hidden_states``,
        ``front_end``, ``encoder_states``); ``""``: ``featstore.forward`` itself.
    description : str
        One line for documentation.
    """

    model_type: str
    model_class: str
    config_class: str
    weight_prefix: str
    ctc_class: str
    pretraining_class: str = ""
    layers: str = "encoder.layers"
    attention: str = "attention"
    feed_forward: str = "feed_forward"
    attention_projections: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj")
    feed_forward_projections: tuple[str, ...] = ("intermediate_dense", "output_dense")
    layer_mask: str = "additive"
    positional: str = "conv"
    front_end_norm: str = ""
    forward_module: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if self.layer_mask not in ("additive", "bool"):
            raise ValueError(f"{self.model_type}: layer_mask {self.layer_mask!r} is not 'additive' or 'bool'")
        if self.positional not in ("conv", "conv-stack", "conv+relative", "none"):
            raise ValueError(f"{self.model_type}: unknown positional embedding {self.positional!r}")

    @property
    def lora_targets(self) -> tuple[str, ...]:
        """Module paths inside one layer that LoRA adapts: attention projections, then feed-forward."""
        ff = f"{self.feed_forward}." if self.feed_forward else ""  # Whisper: fc1/fc2 sit in the layer itself
        return (*(f"{self.attention}.{p}" for p in self.attention_projections),
                *(f"{ff}{p}" for p in self.feed_forward_projections))


FAMILIES: dict[str, FamilySpec] = {
    "wav2vec2": FamilySpec(
        model_type="wav2vec2", model_class="Wav2Vec2Model", config_class="Wav2Vec2Config",
        weight_prefix="wav2vec2.", ctc_class="Wav2Vec2ForCTC", pretraining_class="Wav2Vec2ForPreTraining",
        description="wav2vec 2.0 base/large, XLS-R, MMS (group- or layer-norm front end, post- or pre-norm)",
    ),
    "wavlm": FamilySpec(
        model_type="wavlm", model_class="WavLMModel", config_class="WavLMConfig",
        weight_prefix="wavlm.", ctc_class="WavLMForCTC", layer_mask="bool", positional="conv+relative",
        description="WavLM base/base+/large (gated relative position bias computed by layer 0)",
    ),
    "hubert": FamilySpec(
        model_type="hubert", model_class="HubertModel", config_class="HubertConfig",
        weight_prefix="hubert.", ctc_class="HubertForCTC",
        description="HuBERT base/large, mHuBERT (optional layer norm before the projection, "
                    "optional batch norm before the positional convolution)",
    ),
    "data2vec-audio": FamilySpec(
        model_type="data2vec-audio", model_class="Data2VecAudioModel", config_class="Data2VecAudioConfig",
        weight_prefix="data2vec_audio.", ctc_class="Data2VecAudioForCTC", positional="conv-stack",
        front_end_norm="layer",
        description="data2vec-audio base/large (layer-norm front end, post-norm, a stack of positional convolutions)",
    ),
    "whisper": FamilySpec(
        model_type="whisper", model_class="transformers.models.whisper.modeling_whisper.WhisperEncoder",
        config_class="WhisperConfig", weight_prefix="model.encoder.", ctc_class="",
        attention="self_attn", feed_forward="", feed_forward_projections=("fc1", "fc2"), positional="none",
        forward_module="featstore.forward_whisper",
        description="Whisper's encoder (log-mel front end, fixed 30 s windows cropped to each clip; "
                    "loaded by featstore.models.whisper)",
    ),
}
"""Model families by ``config.json`` ``model_type``."""

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
        A key of ``FAMILIES`` (the ``model_type`` of its ``config.json``).
    language : str
        The paper's language code of the pre-training / fine-tuning data; ``"mul"``
        (:data:`MULTILINGUAL`) for a model pre-trained on many languages.
    format : str
        On-disk layout: ``"hf"`` or ``"speechbrain"``.
    description : str
        One line for ``featstore models``.
    n_layers : int
        Transformer layers (hidden states = ``n_layers + 1``).
    hidden_size : int
        Width of every hidden state.
    pretraining_languages : str
        The pre-training data's languages as people quote them (``"en"``, ``"128 languages"``).
    """

    alias: str
    hf_id: str
    family: str
    language: str
    format: str
    description: str
    n_layers: int
    hidden_size: int
    pretraining_languages: str = field(default="")

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"{self.alias}: family {self.family!r} not in {sorted(FAMILIES)}")
        if self.format not in FORMATS:
            raise ValueError(f"{self.alias}: format {self.format!r} not in {FORMATS}")
        if self.hf_id.count("/") != 1:
            raise ValueError(f"{self.alias}: hf_id {self.hf_id!r} is not 'org/name'")
        if self.n_layers < 1 or self.hidden_size < 1:
            raise ValueError(f"{self.alias}: n_layers and hidden_size must be positive")
        if not self.pretraining_languages:
            object.__setattr__(self, "pretraining_languages", self.language)

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
}

# Multilingual models first, then the usual English ones. Names and sizes only: nothing
# is downloaded (put the folders on disk, see docs/models.md).
_MORE = (
    ("xlsr-300m", "facebook/wav2vec2-xls-r-300m", "wav2vec2", 24, 1024, "128 languages",
     "XLS-R 300M: wav2vec 2.0 large pre-trained on 436k h in 128 languages"),
    ("xlsr-1b", "facebook/wav2vec2-xls-r-1b", "wav2vec2", 48, 1280, "128 languages",
     "XLS-R 1B: 436k h in 128 languages"),
    ("xlsr-53", "facebook/wav2vec2-large-xlsr-53", "wav2vec2", 24, 1024, "53 languages",
     "XLSR-53: wav2vec 2.0 large pre-trained on 56k h in 53 languages"),
    ("mms-300m", "facebook/mms-300m", "wav2vec2", 24, 1024, "1406 languages",
     "MMS 300M: wav2vec 2.0 large pre-trained on about 500k h in 1406 languages"),
    ("mms-1b", "facebook/mms-1b", "wav2vec2", 48, 1280, "1406 languages",
     "MMS 1B: about 500k h in 1406 languages"),
    ("mhubert-147", "utter-project/mHuBERT-147", "hubert", 12, 768, "147 languages",
     "mHuBERT-147: HuBERT base pre-trained on 90k h in 147 languages"),
    ("w2v2-large", "facebook/wav2vec2-large-lv60", "wav2vec2", 24, 1024, "en",
     "wav2vec 2.0 large pre-trained on Libri-Light 60k h"),
    ("hubert-base", "facebook/hubert-base-ls960", "hubert", 12, 768, "en",
     "HuBERT base pre-trained on LibriSpeech 960 h"),
    ("hubert-large", "facebook/hubert-large-ll60k", "hubert", 24, 1024, "en",
     "HuBERT large pre-trained on Libri-Light 60k h"),
    ("data2vec-audio-base", "facebook/data2vec-audio-base", "data2vec-audio", 12, 768, "en",
     "data2vec-audio base pre-trained on LibriSpeech 960 h"),
    ("data2vec-audio-large", "facebook/data2vec-audio-large", "data2vec-audio", 24, 1024, "en",
     "data2vec-audio large pre-trained on Libri-Light 60k h"),
    ("wavlm-base", "microsoft/wavlm-base", "wavlm", 12, 768, "en",
     "WavLM base pre-trained on LibriSpeech 960 h"),
    ("wavlm-base-plus", "microsoft/wavlm-base-plus", "wavlm", 12, 768, "en",
     "WavLM base+ pre-trained on 94k h of English"),
    ("whisper-base", "openai/whisper-base", "whisper", 6, 512, "99 languages",
     "Whisper base encoder (30 s log-mel windows), 680k h weakly supervised"),
    ("whisper-small", "openai/whisper-small", "whisper", 12, 768, "99 languages",
     "Whisper small encoder (30 s log-mel windows), 680k h weakly supervised"),
)
for _alias, _hf_id, _family, _layers, _width, _langs, _what in _MORE:
    MODELS[_alias] = ModelSpec(
        alias=_alias, hf_id=_hf_id, family=_family, format="hf", description=_what,
        language=MULTILINGUAL if _langs.endswith("languages") else _langs,
        n_layers=_layers, hidden_size=_width, pretraining_languages=_langs,
    )

REPOSITORY_ALIASES: dict[str, str] = {spec.hf_id: alias for alias, spec in MODELS.items()}
"""Hugging Face repository -> its alias: an error for a repository id given where an alias
is expected names the alias (``featstore.errors.known_as_hint``)."""
