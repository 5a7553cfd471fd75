"""Running chosen encoder layers from a given hidden state, batched with a frame mask.

The front end (convolutions, projection, positional convolution) comes from
``featstore.forward``, exact under padding; here the transformer layers run from hidden
state ``start`` (0 = the transformer input, ``i`` = output of layer ``i``) to ``stop``, so
that frozen states read from featstore's cache can stand in for what lies below.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from featstore.forward import (
    encoder_layers,
    encoder_states,
    family_of,
    front_end,
    layer_attention_mask,
    prepare_inputs,
)
from finetune import whisper_encoder  # Whisper: its own layer runner (windows of the clips' frames)
from finetune.whisper_encoder import crop_to_frames, is_whisper


def states_from_waves(encoder: nn.Module, waves: Sequence[np.ndarray | torch.Tensor], do_normalize: bool,
                      state: int, spec_augment: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden state ``state`` (B, T, D) of raw clips and the (B, T) bool mask of real
    frames, computed without gradients by the frozen encoder (layers below ``state`` must be
    frozen, i.e. without adapters; in eval mode unless train-mode regularisation is meant).

    ``spec_augment``: mask the projected features as transformers does in training
    (``_mask_hidden_states``: the checkpoint's ``mask_time_prob``/``mask_feature_prob``;
    it does nothing unless the encoder is in train mode and ``apply_spec_augment`` is set).
    """
    with torch.no_grad():
        features, mask = front_end(encoder, prepare_inputs(waves, do_normalize))
        if spec_augment and hasattr(encoder, "_mask_hidden_states"):
            # transformers draws the masks from numpy's global generator: seed it from torch's
            # (seeded per run) and restore it, so runs repeat and nothing else is disturbed
            saved = np.random.get_state()
            np.random.seed(int(torch.randint(0, 2**31 - 1, ())))
            try:
                features = encoder._mask_hidden_states(features, attention_mask=mask.long())
            finally:
                np.random.set_state(saved)
        states = encoder_states(encoder, features, mask, n_layers=state)
    if is_whisper(encoder):  # Whisper hook (branch whisper): the clips' own frames, as cached
        return crop_to_frames(states[-1], mask)
    return states[-1], mask


def attention_mask_for(encoder: nn.Module, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mask each layer expects: the bool frame mask for WavLM, transformers'
    bidirectional (4-D) mask for the other families (an integer mask would be misread);
    :func:`featstore.forward.layer_attention_mask`."""
    return layer_attention_mask(encoder, h, mask)


def run_layers(encoder: nn.Module, h: torch.Tensor, mask: torch.Tensor, start: int, stop: int,
               use_checkpointing: bool = False, final_norm: bool = False, layerdrop: float = 0.0) -> torch.Tensor:
    """Hidden state ``stop`` from hidden state ``start``.

    Parameters
    ----------
    encoder : a bare encoder of a registered family (``Wav2Vec2Model``, ``WavLMModel``,
        ``HubertModel``, ``Data2VecAudioModel``), possibly adapted (layers may be wrapped)
    h : (B, T, D) hidden state ``start``
    mask : (B, T) bool, True on real frames
    start, stop : hidden-state indices, ``0 <= start <= stop <= n_layers``
    use_checkpointing : recompute each layer in the backward pass (saves memory on GPU)
    final_norm : apply the encoder's final layer norm after ``stop`` (pre-norm models whose
        ``stop`` is their last layer, as transformers' ``output_hidden_states`` does)
    layerdrop : probability of skipping each layer (LayerDrop, as transformers' encoder
        loop does in training); 0 runs every layer
    """
    if is_whisper(encoder):  # Whisper hook (branch whisper): windows of the clips' own frames
        return whisper_encoder.run_layers(encoder, h, mask, start, stop, use_checkpointing, final_norm, layerdrop)
    layers = encoder_layers(encoder)
    if not 0 <= start <= stop <= len(layers):
        raise ValueError(f"need 0 <= start ({start}) <= stop ({stop}) <= {len(layers)}")
    mask = mask.to(torch.bool)
    # WavLM: layer 0 owns the relative position bias that every layer adds
    wavlm = family_of(encoder).positional == "conv+relative"
    stable = bool(getattr(encoder.config, "do_stable_layer_norm", False))
    attn_mask = attention_mask_for(encoder, h, mask)
    position_bias = None
    if wavlm and start > 0:
        # only layer 0 owns the relative position embedding; compute its bias as it would
        first = _unwrap(layers[0]).attention
        bsz, t, _ = h.shape
        position_bias = first.compute_bias(t, t).unsqueeze(0).repeat(bsz, 1, 1, 1)
        position_bias = position_bias.view(bsz * first.num_heads, t, t)
    for i in range(start, stop):
        layer = layers[i]
        if layerdrop > 0.0 and float(torch.rand([])) < layerdrop:
            if wavlm and position_bias is None:  # layer 0 owns the relative position bias
                first = _unwrap(layers[0]).attention
                bsz, t, _ = h.shape
                position_bias = first.compute_bias(t, t).unsqueeze(0).repeat(bsz, 1, 1, 1)
                position_bias = position_bias.view(bsz * first.num_heads, t, t)
            continue
        if wavlm:
            kwargs = {} if stable else {"index": i}

            def call(x: torch.Tensor, pb: torch.Tensor | None, layer: nn.Module = layer,
                     kwargs: dict = kwargs) -> tuple[torch.Tensor, torch.Tensor]:
                return layer(x, attention_mask=mask, position_bias=pb, **kwargs)

            if use_checkpointing and position_bias is not None:
                h, position_bias = checkpoint(call, h, position_bias, use_reentrant=False)
            elif use_checkpointing:
                h, position_bias = checkpoint(call, h, None, use_reentrant=False)
            else:
                h, position_bias = call(h, position_bias)
        else:
            if use_checkpointing:
                h = checkpoint(layer, h, attn_mask, use_reentrant=False)
            else:
                h = layer(h, attention_mask=attn_mask)
    if final_norm and stop > start:
        h = encoder.encoder.layer_norm(h)
    return h


def _unwrap(layer: nn.Module) -> nn.Module:
    return getattr(layer, "base_layer", layer)
