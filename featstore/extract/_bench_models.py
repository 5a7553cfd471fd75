"""Random models of each SSL family at their real size, for ``featstore bench --family F``.

Built from the transformers config classes alone (nothing is downloaded); random weights
do the same arithmetic as trained ones, which is all a speed or memory benchmark needs.

| family | size at ``--model-size base`` | config |
| --- | --- | --- |
| ``wav2vec2`` | 12 x 768, group-norm front end, post-norm | ``Wav2Vec2Config()`` (wav2vec 2.0 base) |
| ``wavlm`` | 12 x 768, group-norm front end, post-norm | ``WavLMConfig()`` (WavLM base / base+) |
| ``hubert`` | 12 x 768, group-norm front end, post-norm | ``HubertConfig()`` (HuBERT base, mHuBERT) |
| ``data2vec-audio`` | 12 x 768, layer-norm front end | ``Data2VecAudioConfig()`` (data2vec-audio base) |
| ``whisper`` | encoder 6 x 512, log-mel front end, 30 s windows | ``WhisperConfig`` of whisper-base |
| ``xlsr`` | 24 x 1024, layer-norm front end, pre-norm | ``Wav2Vec2Config`` of XLS-R 300M / MMS 300M / wav2vec 2.0 large |
"""

from __future__ import annotations

from collections.abc import Callable

import torch

BENCH_FAMILIES = ("wav2vec2", "wavlm", "hubert", "data2vec-audio", "whisper", "xlsr")

_TINY_SSL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
             "conv_dim": (32,) * 7, "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4}
_XLSR = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
         "feat_extract_norm": "layer", "do_stable_layer_norm": True, "conv_bias": True}
_WHISPER = {"base": {"d_model": 512, "encoder_layers": 6, "encoder_attention_heads": 8, "encoder_ffn_dim": 2048},
            "tiny": {"d_model": 32, "encoder_layers": 2, "encoder_attention_heads": 4, "encoder_ffn_dim": 64}}


def _ssl(config_cls: str, model_cls: str, base: dict, tiny: dict) -> Callable[[str], tuple[object, torch.nn.Module]]:
    def build(size: str) -> tuple[object, torch.nn.Module]:
        import transformers

        config = getattr(transformers, config_cls)(**(base if size == "base" else {**base, **tiny}))
        config.apply_spec_augment = False
        return config, getattr(transformers, model_cls)(config)
    return build


def _whisper(size: str) -> tuple[object, torch.nn.Module]:
    from transformers import WhisperConfig

    from featstore.models.whisper import WhisperEncoderOnly

    config = WhisperConfig(**_WHISPER[size], num_mel_bins=80, max_source_positions=1500)
    return config, WhisperEncoderOnly(config)  # the encoder with its log-mel front end, as loading makes it


_BUILDERS: dict[str, Callable[[str], tuple[object, torch.nn.Module]]] = {
    "wav2vec2": _ssl("Wav2Vec2Config", "Wav2Vec2Model", {}, _TINY_SSL),
    "wavlm": _ssl("WavLMConfig", "WavLMModel", {}, {**_TINY_SSL, "num_buckets": 32, "max_bucket_distance": 64}),
    "hubert": _ssl("HubertConfig", "HubertModel", {}, _TINY_SSL),
    "data2vec-audio": _ssl("Data2VecAudioConfig", "Data2VecAudioModel", {}, {**_TINY_SSL, "num_conv_pos_embeddings": 5}),
    "whisper": _whisper,
    "xlsr": _ssl("Wav2Vec2Config", "Wav2Vec2Model", _XLSR, _TINY_SSL),
}
"""Family -> builder of ``(config, random encoder)`` at ``base`` (the family's real size)
or ``tiny`` (a quick check: 2 layers x 32 dims, the real front-end schedule)."""

FAMILY_LABELS = {"wav2vec2": "wav2vec 2.0", "wavlm": "WavLM", "hubert": "HuBERT", "data2vec-audio": "data2vec-audio",
                 "whisper": "Whisper encoder", "xlsr": "XLS-R-size wav2vec 2.0"}


def build_family(family: str, size: str, seed: int) -> tuple[object, torch.nn.Module]:
    """``(config, encoder)``: a random ``family`` model of ``size`` (``base`` or ``tiny``),
    eval mode, weights from ``seed`` (the global torch RNG is left as it was)."""
    if family not in _BUILDERS:
        from featstore.errors import unknown_name

        raise unknown_name("bench family", family, BENCH_FAMILIES)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config, encoder = _BUILDERS[family](size)
    return config, encoder.eval()
