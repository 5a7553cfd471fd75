"""The exact batched forward pass shared by extraction, fine-tuning and diarization.

Why not ``model(batch, attention_mask=...)``: wav2vec 2.0 base models normalise the first
convolution's output per channel over TIME (``feat_extract_norm="group"``), so zero padding
changes every hidden state of a short clip (``../shared/specs/checkpoints.md``). Here the
front end computes that normalisation with statistics over each clip's real samples only,
which makes a padded batch give the same numbers as one clip at a time, for group-norm and
layer-norm models alike. The transformer then runs batched with a boolean frame mask (an
integer mask is misread by the encoder).

Every family of ``featstore.models.registry.FAMILIES`` runs through here (wav2vec 2.0 base
and large / XLS-R / MMS, WavLM, HuBERT, data2vec-audio); what differs between them is read
off the family's entry (:func:`family_of`): the mask each layer takes (``layer_mask``) and
the positional embedding (``positional``). The positional convolution sees zeros on padded
frames, as a clip alone sees its own zero padding; where a positional embedding has more
than one step (HuBERT's optional batch norm before its convolution, data2vec-audio's stack
of convolution + layer-norm + GELU blocks) the padded frames are set to zero again before
every step, since each step makes them non-zero. A family whose entry names a
``forward_module`` (a different front end) is handed to that module.

Hidden state 0 is the transformer input (after the positional convolution and, for
post-norm models, the encoder layer norm); hidden state ``i`` is the output of layer ``i``.
For pre-norm ("stable layer norm") models the last layer's output gets the encoder's final
layer norm, as in transformers' ``output_hidden_states``.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Sequence
from types import ModuleType

import numpy as np
import torch
from torch import nn

from featstore.models.registry import FAMILIES, FamilySpec

__all__ = [
    "family_of",
    "layer_attention_mask",
    "prepare_inputs",
    "frame_counts",
    "front_end",
    "encoder_states",
    "encoder_layers",
    "set_encoder_layers",
    "hidden_states",
    "masked_mean_std",
    "n_layers_of",
    "positional_embedding",
    "project_features",
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
    spec = FAMILIES.get(getattr(config, "model_type", None))
    if spec is not None and spec.forward_module:  # a family with its own front end (Whisper: 50 per second)
        return importlib.import_module(spec.forward_module).frame_counts(n_samples)
    return frame_counts_after(config, n_samples, n_conv=len(config.conv_kernel)).clamp(min=0)


def family_of(encoder: nn.Module) -> FamilySpec:
    """The registry entry of ``encoder``'s family, from ``encoder.config.model_type``.

    Raises
    ------
    ValueError
        A model type that is not in ``featstore.models.registry.FAMILIES``.
    """
    model_type = getattr(getattr(encoder, "config", None), "model_type", None)
    if model_type not in FAMILIES:
        raise ValueError(f"no exact forward pass for model type {model_type!r} (families: {sorted(FAMILIES)})")
    return FAMILIES[model_type]


def _delegate(encoder: nn.Module) -> ModuleType | None:
    """The family's own forward module (``FamilySpec.forward_module``), else ``None``."""
    name = family_of(encoder).forward_module
    return importlib.import_module(name) if name else None


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The transformer layers of an encoder of any registered family (``FamilySpec.layers``)."""
    return encoder.get_submodule(family_of(encoder).layers)


def set_encoder_layers(encoder: nn.Module, layers: nn.ModuleList) -> None:
    """Replace the transformer layers of ``encoder`` (e.g. by the first ``k`` of them)."""
    parent, _, name = family_of(encoder).layers.rpartition(".")
    setattr(encoder.get_submodule(parent) if parent else encoder, name, layers)


def n_layers_of(encoder: nn.Module) -> int:
    """Number of transformer layers of an encoder of any registered family."""
    return len(encoder_layers(encoder))


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
    encoder : a bare encoder of a registered family (``Wav2Vec2Model``, ``WavLMModel``,
        ``HubertModel``, ``Data2VecAudioModel``)
    waves : prepared clips (see :func:`prepare_inputs`), 1-D float32, any lengths

    Returns
    -------
    features : (B, T_max, D) transformer-input features (before the positional conv)
    mask : (B, T_max) bool, True on each clip's real frames
    """
    own = _delegate(encoder)
    if own is not None:
        return own.front_end(encoder, waves)
    device = next(encoder.parameters()).device
    batch, lengths = _pad(waves, device)
    conv_layers = encoder.feature_extractor.conv_layers
    h = batch[:, None]
    first = conv_layers[0]
    if isinstance(getattr(first, "layer_norm", None), nn.GroupNorm):
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
    features = project_features(encoder, h.transpose(1, 2))
    n_frames = frame_counts(encoder.config, lengths).to(device)
    mask = torch.arange(features.shape[1], device=device)[None, :] < n_frames[:, None]
    return features, mask


def project_features(encoder: nn.Module, conv_out: torch.Tensor) -> torch.Tensor:
    """The encoder's feature projection of the convolutional output ``conv_out`` (B, T, C)
    -> (B, T, D), for every family: wav2vec 2.0 / WavLM / data2vec-audio return
    ``(projected, normed)``, HuBERT the projection alone."""
    projected = encoder.feature_projection(conv_out)
    return projected[0] if isinstance(projected, tuple) else projected


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
    encoder : a bare encoder of a registered family
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
    own = _delegate(encoder)
    if own is not None:
        return own.encoder_states(encoder, features, mask, n_layers=n_layers, start_layer=start_layer)
    spec = family_of(encoder)
    enc = encoder.encoder
    layers = encoder_layers(encoder)
    total = len(layers)
    n_layers = total if n_layers is None else int(n_layers)
    if not 0 <= start_layer <= n_layers <= total:
        raise ValueError(f"need 0 <= start_layer ({start_layer}) <= n_layers ({n_layers}) <= {total}")
    mask = mask.to(torch.bool)
    stable = bool(getattr(encoder.config, "do_stable_layer_norm", False))
    if start_layer == 0:
        h = features.masked_fill(~mask[..., None], 0.0)
        h = h + positional_embedding(encoder, h, mask)
        if not stable:
            h = enc.layer_norm(h)
        h = enc.dropout(h)
    else:
        h = features
    states = [h]
    attn_mask = layer_attention_mask(encoder, h, mask)
    position_bias = None
    for i in range(start_layer, n_layers):
        layer = layers[i]
        if spec.positional == "conv+relative":
            if position_bias is None and i > 0:
                # the relative position bias is computed by layer 0 only; recompute it here
                # exactly as layer 0 would when starting above it
                position_bias = _wavlm_position_bias(layers[0].attention, h)
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


def positional_embedding(encoder: nn.Module, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The encoder's convolutional positional embedding of ``h`` (B, T, D), zero on padded
    frames, exact under padding: padded frames are zero before every step of it.

    ``conv`` families: one grouped convolution (HuBERT's optional batch norm runs first and
    its output is re-masked); data2vec-audio (``conv-stack``): each convolution + layer-norm
    + GELU block sees the previous block's output with padded frames set to zero, as a clip
    alone sees its own zero padding at every block.
    """
    spec = family_of(encoder)
    pos = encoder.encoder.pos_conv_embed
    keep = mask.to(h.dtype)[:, :, None]
    if spec.positional == "conv-stack":
        x = h
        for block in pos.layers:
            x = block((x * keep).transpose(1, 2)).transpose(1, 2)
        return x
    batch_norm = getattr(pos, "batch_norm", None)
    if batch_norm is None:
        return pos(h * keep)
    x = batch_norm((h * keep).transpose(1, 2)) * keep.transpose(1, 2)
    x = pos.activation(pos.padding(pos.conv(x)))
    return x.transpose(1, 2)


def layer_attention_mask(encoder: nn.Module, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The ``attention_mask`` each transformer layer of ``encoder`` takes for the (B, T) bool
    frame ``mask``: the bool mask itself for WavLM (``layer_mask="bool"``), transformers'
    bidirectional (4-D) mask for the others (an integer mask would be misread)."""
    if family_of(encoder).layer_mask == "bool":
        return mask
    from transformers.masking_utils import create_bidirectional_mask

    return create_bidirectional_mask(config=encoder.config, inputs_embeds=h, attention_mask=mask)


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
    own = _delegate(encoder)
    if own is not None:
        return own.hidden_states(encoder, waves, n_layers=n_layers, grad=grad)
    with torch.set_grad_enabled(grad):
        features, mask = front_end(encoder, waves)
        states = encoder_states(encoder, features, mask, n_layers=n_layers)
    return torch.stack(states), mask


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
