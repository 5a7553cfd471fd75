"""Whisper's encoder layers for fine-tuning: the trainable part above the frozen prefix.

The frozen prefix (hidden state ``start`` and everything below it) is what featstore
extracts and caches: each clip in 30 s windows padded as Whisper was trained, cropped to
the clip's own frames (:mod:`featstore.forward_whisper`). The trainable layers
``start + 1 .. stop`` run here on those cropped frames only: each clip's frames in windows
of 1500 (30 s), attention restricted to the clip's frames of the window (padded keys
masked). So a batch equals one clip at a time, a cached hidden state stands in exactly for
the frozen prefix, and a 3 s clip costs 150 frames per trainable layer instead of 1500.
The price: the trainable layers do not see the window's padding; ``docs/whisper.md``
measures how much that changes the states of an unadapted model.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

WHISPER_LORA_TARGETS: tuple[str, ...] = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.out_proj",
    "fc1",
    "fc2",
)
"""LoRA targets inside one ``WhisperEncoderLayer``: the attention projections and both
feed-forward projections (the counterparts of wav2vec 2.0's ``LORA_TARGETS``)."""


def is_whisper(encoder: nn.Module) -> bool:
    """Whether ``encoder`` is Whisper's (``config.model_type == "whisper"``)."""
    return getattr(getattr(encoder, "config", None), "model_type", None) == "whisper"


def crop_to_frames(h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, D) states and (B, T) mask cut to the longest clip's real frames (what the
    cache stores for each clip: the window padding beyond a clip's frames is dropped)."""
    keep = max(int(mask.sum(1).max()), 1)
    return h[:, :keep], mask[:, :keep]


def _key_mask(encoder: nn.Module, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
    from transformers.masking_utils import create_bidirectional_mask

    return create_bidirectional_mask(config=encoder.config, inputs_embeds=h, attention_mask=mask)


def run_layers(encoder: nn.Module, h: torch.Tensor, mask: torch.Tensor, start: int, stop: int,
               use_checkpointing: bool = False, final_norm: bool = False, layerdrop: float = 0.0) -> torch.Tensor:
    """Hidden state ``stop`` from hidden state ``start`` of a Whisper encoder.

    Parameters
    ----------
    encoder : :class:`featstore.models.whisper.WhisperEncoderOnly` (layers may be wrapped
        by adapters)
    h : (B, T, D) hidden state ``start`` of each clip's own frames (position embeddings
        already added: every hidden state, state 0 included, carries them)
    mask : (B, T) bool, True on real frames
    start, stop : hidden-state indices, ``0 <= start <= stop <= n_layers``
    use_checkpointing : recompute each layer in the backward pass
    final_norm : apply the encoder's final layer norm after ``stop``
    layerdrop : probability of skipping each layer in training (0: run every layer)

    Returns
    -------
    (B, T, D) hidden state ``stop``; frames outside ``mask`` are zero.
    """
    enc = encoder.encoder
    if not 0 <= start <= stop <= len(enc.layers):
        raise ValueError(f"need 0 <= start ({start}) <= stop ({stop}) <= {len(enc.layers)}")
    mask = mask.to(torch.bool)
    frames = int(encoder.config.max_source_positions)
    # one LayerDrop draw per layer and call, shared by every window
    run = [i for i in range(start, stop) if not (layerdrop > 0.0 and float(torch.rand([])) < layerdrop)]
    outs = []
    for lo in range(0, h.shape[1], frames):
        hw, mw = h[:, lo:lo + frames], mask[:, lo:lo + frames]
        rows = torch.nonzero(mw.any(1)).squeeze(1)
        if len(rows) == 0:
            outs.append(torch.zeros_like(hw))
            continue
        x, m = hw.index_select(0, rows), mw.index_select(0, rows)
        attn = _key_mask(encoder, x, m)
        for i in run:
            layer = enc.layers[i]
            x = checkpoint(layer, x, attn, use_reentrant=False) if use_checkpointing else layer(x, attn)
        if final_norm and stop > start:
            x = enc.layer_norm(x)
        x = x.masked_fill(~m[..., None], 0.0)
        outs.append(torch.zeros_like(hw).index_copy(0, rows, x.to(hw.dtype)))
    return torch.cat(outs, dim=1) if outs else h
