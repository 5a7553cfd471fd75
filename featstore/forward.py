"""The exact batched forward pass shared by extraction, fine-tuning and diarization.

Why not ``model(batch, attention_mask=...)``: wav2vec 2.0 base models normalise the first
convolution's output per channel over TIME (``feat_extract_norm="group"``), so zero padding
changes every hidden state of a short clip (``../shared/specs/checkpoints.md``). Here the
front end computes that normalisation with statistics over each clip's real samples only,
which makes a padded batch give the same numbers as one clip at a time, for group-norm and
layer-norm models alike. The transformer then runs batched with a boolean frame mask (an
integer mask is misread by the encoder).

Hidden state 0 is the transformer input (after the positional convolution and, for
post-norm models, the encoder layer norm); hidden state ``i`` is the output of layer ``i``.
For pre-norm ("stable layer norm") models the last layer's output gets the encoder's final
layer norm, as in transformers' ``output_hidden_states``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

__all__ = [
    "prepare_inputs",
    "frame_counts",
    "front_end",
    "encoder_states",
    "hidden_states",
    "masked_mean_std",
    "n_layers_of",
]


def prepare_inputs(waves: Sequence[np.ndarray | torch.Tensor], do_normalize: bool) -> list[torch.Tensor]:
    """Float32 tensors, each normalised to zero mean and unit variance when ``do_normalize``
    (per clip, before any padding, as transformers' ``Wav2Vec2FeatureExtractor``)."""
    out = []
    for wave in waves:
        x = torch.as_tensor(np.asarray(wave, dtype=np.float32) if not torch.is_tensor(wave) else wave)
        x = x.to(torch.float32).reshape(-1)
        if do_normalize:
            x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)
        out.append(x)
    return out


def frame_counts(config: object, n_samples: int | Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Frames the convolutional front end makes from clips of ``n_samples`` samples.

    Uses the config's ``conv_kernel`` and ``conv_stride`` (wav2vec 2.0: 16000 samples -> 49).
    """
    if _is_whisper(config):  # Whisper hook (branch whisper): ceil(n / 320), 50 per second
        from featstore import forward_whisper
        return forward_whisper.frame_counts(n_samples)
    return frame_counts_after(config, n_samples, n_conv=len(config.conv_kernel)).clamp(min=0)


def n_layers_of(encoder: nn.Module) -> int:
    """Number of transformer layers of a ``Wav2Vec2Model``/``WavLMModel``."""
    return len(encoder.encoder.layers)


def _pad(waves: Sequence[torch.Tensor], device: torch.device | str | None) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    batch = torch.zeros(len(waves), int(lengths.max()), dtype=torch.float32)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
    return batch.to(device) if device is not None else batch, lengths


def front_end(encoder: nn.Module, waves: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Convolutional front end + feature projection, batched and exact under padding.

    Parameters
    ----------
    encoder : a transformers ``Wav2Vec2Model`` or ``WavLMModel``
    waves : prepared clips (see :func:`prepare_inputs`), 1-D float32, any lengths

    Returns
    -------
    features : (B, T_max, D) transformer-input features (before the positional conv)
    mask : (B, T_max) bool, True on each clip's real frames
    """
    if _is_whisper(encoder.config):  # Whisper hook (branch whisper): full 30 s windows
        from featstore import forward_whisper
        return forward_whisper.front_end(encoder, waves)
    device = next(encoder.parameters()).device
    batch, lengths = _pad(waves, device)
    conv_layers = encoder.feature_extractor.conv_layers
    h = batch[:, None]
    first = conv_layers[0]
    if encoder.config.feat_extract_norm == "group":
        # statistics in float32 even under autocast (bf16 sums over thousands of samples drift)
        h = first.conv(h).float()
        norm: nn.GroupNorm = first.layer_norm
        if norm.num_groups != norm.num_channels:
            raise ValueError("group-norm front end with grouped channels is not supported")
        real = frame_counts_after(encoder.config, lengths, n_conv=1).to(device)
        valid = (torch.arange(h.shape[-1], device=device)[None, :] < real[:, None]).to(h.dtype)[:, None, :]
        count = real.to(h.dtype)[:, None, None]
        mean = (h * valid).sum(-1, keepdim=True) / count
        var = (((h - mean) * valid) ** 2).sum(-1, keepdim=True) / count
        h = (h - mean) / torch.sqrt(var + norm.eps)
        h = h * norm.weight[None, :, None] + norm.bias[None, :, None]
        h = first.activation(h)
    else:
        h = first(h)
    for layer in conv_layers[1:]:
        h = layer(h)
    features, _ = encoder.feature_projection(h.transpose(1, 2))
    n_frames = frame_counts(encoder.config, lengths).to(device)
    mask = torch.arange(features.shape[1], device=device)[None, :] < n_frames[:, None]
    return features, mask


def frame_counts_after(config: object, n_samples: int | Sequence[int] | torch.Tensor, n_conv: int) -> torch.Tensor:
    """Output lengths after the first ``n_conv`` convolutions of the front end."""
    n = torch.as_tensor(n_samples, dtype=torch.long)
    for kernel, stride in list(zip(config.conv_kernel, config.conv_stride, strict=True))[:n_conv]:
        n = torch.div(n - kernel, stride, rounding_mode="floor") + 1
    return n


def encoder_states(
    encoder: nn.Module,
    features: torch.Tensor,
    mask: torch.Tensor,
    n_layers: int | None = None,
    start_layer: int = 0,
) -> list[torch.Tensor]:
    """Run the transformer on front-end ``features`` and return hidden states.

    Parameters
    ----------
    encoder : ``Wav2Vec2Model`` or ``WavLMModel``
    features : (B, T, D). With ``start_layer == 0`` the front-end output of
        :func:`front_end`; with ``start_layer = j > 0`` hidden state ``j`` itself (so the
        frozen layers below can be read from a cache and skipped).
    mask : (B, T) bool, True on real frames
    n_layers : last layer to run (default: all)
    start_layer : first hidden state index represented by ``features``

    Returns
    -------
    list of (B, T, D) tensors: hidden states ``start_layer .. n_layers``.
    """
    if _is_whisper(encoder.config):  # Whisper hook (branch whisper): whole windows, see forward_whisper
        from featstore import forward_whisper
        return forward_whisper.encoder_states(encoder, features, mask, n_layers=n_layers, start_layer=start_layer)
    enc = encoder.encoder
    total = len(enc.layers)
    n_layers = total if n_layers is None else int(n_layers)
    if not 0 <= start_layer <= n_layers <= total:
        raise ValueError(f"need 0 <= start_layer ({start_layer}) <= n_layers ({n_layers}) <= {total}")
    mask = mask.to(torch.bool)
    family = encoder.config.model_type
    stable = bool(getattr(encoder.config, "do_stable_layer_norm", False))
    if start_layer == 0:
        h = features.masked_fill(~mask[..., None], 0.0)
        h = h + enc.pos_conv_embed(h)
        if not stable:
            h = enc.layer_norm(h)
        h = enc.dropout(h)
    else:
        h = features
    states = [h]
    attn_mask = _attention_mask(encoder, h, mask)
    position_bias = None
    for i in range(start_layer, n_layers):
        layer = enc.layers[i]
        if family == "wavlm":
            if position_bias is None and i > 0:
                # the relative position bias is computed by layer 0 only; recompute it here
                # exactly as layer 0 would when starting above it
                position_bias = _wavlm_position_bias(enc.layers[0].attention, h)
            kwargs = {} if stable else {"index": i}
            with warnings.catch_warnings():
                # torch warns that WavLM's bool padding mask and float position bias differ in type
                warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
                h, position_bias = layer(h, attention_mask=mask, position_bias=position_bias, **kwargs)
        else:
            h = layer(h, attention_mask=attn_mask)
        states.append(h)
    if stable and n_layers == total and n_layers > start_layer:
        states[-1] = enc.layer_norm(states[-1])
    return states


def _attention_mask(encoder: nn.Module, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
    if encoder.config.model_type == "wavlm":
        return mask
    from transformers.masking_utils import create_bidirectional_mask

    return create_bidirectional_mask(config=encoder.encoder.config, inputs_embeds=h, attention_mask=mask)


def _wavlm_position_bias(attention: nn.Module, h: torch.Tensor) -> torch.Tensor:
    bsz, t, _ = h.shape
    bias = attention.compute_bias(t, t)
    return bias.unsqueeze(0).repeat(bsz, 1, 1, 1).view(bsz * attention.num_heads, t, t)


def hidden_states(
    encoder: nn.Module,
    waves: Sequence[torch.Tensor],
    n_layers: int | None = None,
    grad: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All hidden states 0..``n_layers`` of a batch of prepared clips.

    Returns
    -------
    states : (n_layers + 1, B, T_max, D)
    mask : (B, T_max) bool, True on real frames
    """
    if _is_whisper(encoder.config):  # Whisper hook (branch whisper): windows cropped to each clip's frames
        from featstore import forward_whisper
        return forward_whisper.hidden_states(encoder, waves, n_layers=n_layers, grad=grad)
    with torch.set_grad_enabled(grad):
        features, mask = front_end(encoder, waves)
        states = encoder_states(encoder, features, mask, n_layers=n_layers)
    return torch.stack(states), mask


def _is_whisper(config: object) -> bool:
    """Whisper hook (branch whisper): whether a config is Whisper's (``forward_whisper`` runs it)."""
    return getattr(config, "model_type", None) == "whisper"


def masked_mean_std(states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (population) standard deviation over real frames.

    Parameters
    ----------
    states : (L, B, T, D)
    mask : (B, T) bool

    Returns
    -------
    mean, std : each (L, B, D), computed in float32
    """
    m = mask.to(torch.float32)[None, :, :, None]
    count = m.sum(dim=2).clamp(min=1.0)
    x = states.to(torch.float32)
    mean = (x * m).sum(dim=2) / count
    var = (((x - mean[:, :, None, :]) * m) ** 2).sum(dim=2) / count
    return mean, var.sqrt()
