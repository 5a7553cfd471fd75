"""The exact batched forward pass of Whisper's encoder (``featstore.forward`` calls it).

Whisper's encoder reads fixed 30 s windows: 3000 log-mel frames (10 ms apart) that two
convolutions (the second with stride 2) turn into 1500 frames, 50 per second, to which
learnt absolute position embeddings 0..1499 are added. It was trained on audio padded with
zeros to 30 s and attends to the whole window, padding included (transformers'
``WhisperEncoder.forward`` refuses any other length). So here:

- each clip is split into consecutive 30 s windows (``window_bounds``); the last one (the
  only one for a clip of up to 30 s) is padded to 30 s by ``WhisperFeatureExtractor``;
- each window runs through the encoder as Whisper was trained (full attention over the
  window, no mask), the windows of all clips of a batch side by side;
- a clip's states are its windows' states concatenated and cropped to its own frames:
  ``ceil(n_samples / 320)`` (:func:`frame_count`: a 20 ms frame is kept when it starts
  inside the clip).

Each window is computed on its own, so a batch gives the numbers of one clip at a time.
Hidden state 0 is the transformer input (convolutions + position embeddings); state ``i``
the output of layer ``i``; the last one gets the encoder's final layer norm (as
transformers' ``output_hidden_states`` reports it). ``unpadded_states`` runs a clip without
the 30 s padding, for the measurement in ``docs/whisper.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from featstore.models.whisper import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, window_frames, window_samples

__all__ = ["frame_count", "frame_counts", "window_bounds", "log_mel", "front_end", "encoder_states",
           "hidden_states", "unpadded_states", "padding_effect", "n_windows"]


def frame_count(n_samples: int) -> int:
    """Encoder frames of a clip of ``n_samples`` samples at 16 kHz: ``ceil(n / 320)``
    (16000 samples -> 50, 30 s -> 1500)."""
    return -(-int(n_samples) // SAMPLES_PER_FRAME) if n_samples > 0 else 0


def frame_counts(n_samples: int | Sequence[int] | torch.Tensor) -> torch.Tensor:
    """:func:`frame_count` of each length, as a long tensor of the input's shape."""
    n = torch.as_tensor(n_samples, dtype=torch.long)
    return torch.div(n + SAMPLES_PER_FRAME - 1, SAMPLES_PER_FRAME, rounding_mode="floor").clamp(min=0)


def window_bounds(n_samples: int, samples_per_window: int = 30 * SAMPLE_RATE_HZ) -> list[tuple[int, int]]:
    """``(start, stop)`` samples of the consecutive windows of a clip (at least one)."""
    n = max(int(n_samples), 1)
    return [(lo, min(lo + samples_per_window, n)) for lo in range(0, n, samples_per_window)]


def log_mel(encoder: nn.Module, pieces: Sequence[torch.Tensor]) -> torch.Tensor:
    """(N, n_mels, 3000) log-mel windows of audio pieces of at most 30 s each, each padded
    with zeros to 30 s by the model's ``WhisperFeatureExtractor`` (its per-window
    normalisation: log10, floor at max - 8, (x + 4) / 4)."""
    arrays = [np.asarray(p.detach().cpu().numpy() if torch.is_tensor(p) else p, dtype=np.float32) for p in pieces]
    out = encoder.mel(arrays, sampling_rate=SAMPLE_RATE_HZ, return_tensors="pt", padding="max_length",
                      do_normalize=False, return_attention_mask=False)
    return out["input_features"].to(torch.float32)


def _windows(encoder: nn.Module, waves: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[tuple[int, int]],
                                                                         torch.Tensor, int]:
    """Audio pieces, their (clip, window) owners, frames per clip, windows of the longest clip."""
    step = window_samples(encoder)
    pieces, owners = [], []
    for b, wave in enumerate(waves):
        if len(wave) == 0:
            raise ValueError(f"clip {b} is empty")
        for w, (lo, hi) in enumerate(window_bounds(len(wave), step)):
            pieces.append(wave[lo:hi])
            owners.append((b, w))
    n_frames = frame_counts([len(w) for w in waves])
    return pieces, owners, n_frames, max(w for _, w in owners) + 1


def _embed(enc: nn.Module, mel: torch.Tensor) -> torch.Tensor:
    """Convolutions + position embeddings of (N, n_mels, M) log-mel frames -> (N, M / 2, D)."""
    h = nn.functional.gelu(enc.conv1(mel))
    h = nn.functional.gelu(enc.conv2(h)).permute(0, 2, 1)
    return h + enc.embed_positions.weight[: h.shape[1]]


def front_end(encoder: nn.Module, waves: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-mel windows -> convolutions -> position embeddings, for every window of every clip.

    Parameters
    ----------
    encoder : :class:`featstore.models.whisper.WhisperEncoderOnly`
    waves : prepared 16 kHz clips (1-D float32), any lengths

    Returns
    -------
    features : (B, W * 1500, D) hidden state 0 of the full windows (W: windows of the
        longest clip), the padding inside each window included; zeros where a clip has
        no window
    mask : (B, W * 1500) bool, True on each clip's own frames (:func:`frame_count`)
    """
    device = next(encoder.parameters()).device
    pieces, owners, n_frames, n_win = _windows(encoder, waves)
    frames = window_frames(encoder)
    h = _embed(encoder.encoder, log_mel(encoder, pieces).to(device))
    features = h.new_zeros(len(waves), n_win * frames, h.shape[-1])
    for i, (b, w) in enumerate(owners):
        features[b, w * frames:(w + 1) * frames] = h[i]
    mask = torch.arange(n_win * frames, device=device)[None, :] < n_frames.to(device)[:, None]
    return features, mask


def encoder_states(encoder: nn.Module, features: torch.Tensor, mask: torch.Tensor, n_layers: int | None = None,
                   start_layer: int = 0, crop: bool = False) -> list[torch.Tensor]:
    """Hidden states ``start_layer .. n_layers`` of full windows.

    Parameters
    ----------
    features : (B, W * 1500, D) hidden state ``start_layer`` of whole 30 s windows, padding
        frames included (:func:`front_end`'s output for ``start_layer == 0``)
    mask : (B, W * 1500) bool, True on real frames. Windows holding no real frame are
        skipped (their states stay zero); within a window every frame is attended to.
    crop : return the states cut to the longest clip's real frames (``mask.sum(1).max()``)

    Returns
    -------
    list of (B, T, D) tensors, ``T = W * 1500`` (or the cropped length).
    """
    enc = encoder.encoder
    total = len(enc.layers)
    n_layers = total if n_layers is None else int(n_layers)
    if not 0 <= start_layer <= n_layers <= total:
        raise ValueError(f"need 0 <= start_layer ({start_layer}) <= n_layers ({n_layers}) <= {total}")
    frames = window_frames(encoder)
    bsz, t, dim = features.shape
    if t % frames:
        raise ValueError(f"Whisper runs whole windows of {frames} frames; got {t} frames (use front_end's output)")
    n_win = t // frames
    mask = mask.to(torch.bool)
    keep = int(mask.sum(1).max()) if crop else t
    # the (clip, window) pairs that hold real frames, run side by side
    has_real = mask.view(bsz, n_win, frames).any(-1).reshape(-1)
    rows = torch.nonzero(has_real).squeeze(1)
    h = features.reshape(bsz * n_win, frames, dim).index_select(0, rows)
    if start_layer == 0:
        h = nn.functional.dropout(h, p=enc.dropout, training=enc.training)

    every = len(rows) == bsz * n_win

    def put_back(x: torch.Tensor) -> torch.Tensor:
        full = x if every else x.new_zeros(bsz * n_win, frames, dim).index_copy(0, rows, x)
        full = full.reshape(bsz, t, dim)
        # a cropped copy lets the whole-window tensor go at once (30 s per clip, whatever its length)
        return full[:, :keep].clone() if keep < t else full

    states = [put_back(h)]
    for i in range(start_layer, n_layers):
        h = enc.layers[i](h, None)
        states.append(put_back(h))
    if n_layers == total and n_layers > start_layer:
        states[-1] = put_back(enc.layer_norm(h))
    return states


def hidden_states(encoder: nn.Module, waves: Sequence[torch.Tensor], n_layers: int | None = None,
                  grad: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """All hidden states 0..``n_layers`` of a batch of prepared clips, cropped to their frames.

    Returns
    -------
    states : (n_layers + 1, B, T, D), ``T`` the longest clip's frames (:func:`frame_count`)
    mask : (B, T) bool, True on real frames
    """
    with torch.set_grad_enabled(grad):
        features, mask = front_end(encoder, waves)
        states = encoder_states(encoder, features, mask, n_layers=n_layers, crop=True)
    keep = states[0].shape[1]
    return torch.stack(states), mask[:, :keep]


def unpadded_states(encoder: nn.Module, wave: torch.Tensor, n_layers: int | None = None) -> torch.Tensor:
    """Hidden states of one clip of at most 30 s run WITHOUT padding to 30 s: its own
    log-mel frames only (``floor(n / 160)``), position embeddings 0..T-1, attention over
    its own frames. transformers' ``WhisperEncoder.forward`` refuses this input (it insists
    on 3000 mel frames); the layers themselves accept it. For the padding measurement in
    ``docs/whisper.md``; not the default.

    Returns
    -------
    (n_layers + 1, T, D) with ``T = ceil(floor(n / 160) / 2)``.
    """
    if len(wave) > window_samples(encoder):
        raise ValueError("unpadded_states takes one window: a clip of at most 30 s")
    arr = np.asarray(wave.detach().cpu().numpy() if torch.is_tensor(wave) else wave, dtype=np.float32)
    mel = encoder.mel([arr], sampling_rate=SAMPLE_RATE_HZ, return_tensors="pt", padding="longest",
                      do_normalize=False)["input_features"].to(torch.float32)
    enc = encoder.encoder
    total = len(enc.layers)
    n_layers = total if n_layers is None else int(n_layers)
    with torch.no_grad():
        h = _embed(enc, mel.to(next(encoder.parameters()).device))
        states = [h]
        for i in range(n_layers):
            h = enc.layers[i](h, None)
            states.append(h)
        if n_layers == total and n_layers > 0:
            states[-1] = enc.layer_norm(h)
    return torch.stack(states)[:, 0]


def padding_effect(encoder: nn.Module, wave: torch.Tensor) -> list[dict]:
    """How the 30 s padding changes a clip's states: per hidden state, the mean cosine
    similarity (over the clip's frames) and the largest absolute difference between the
    states of the clip padded to 30 s (the default, :func:`hidden_states`) and run alone
    (:func:`unpadded_states`), compared on the frames both have, plus the padded states'
    largest magnitude for scale.

    Returns
    -------
    one dict per hidden state: ``layer``, ``n_frames``, ``mean_cosine``, ``min_cosine``,
    ``max_abs_diff``, ``max_abs_padded``
    """
    padded, _ = hidden_states(encoder, [torch.as_tensor(wave)])
    alone = unpadded_states(encoder, wave)
    n = min(padded.shape[2], alone.shape[1])
    a, b = padded[:, 0, :n].to(torch.float64), alone[:, :n].to(torch.float64)
    cos = nn.functional.cosine_similarity(a, b, dim=-1)
    return [{"layer": i, "n_frames": n, "mean_cosine": float(cos[i].mean()), "min_cosine": float(cos[i].min()),
             "max_abs_diff": float((a[i] - b[i]).abs().max()), "max_abs_padded": float(a[i].abs().max())}
            for i in range(a.shape[0])]


def n_windows(n_samples: int) -> int:
    """30 s windows a clip of ``n_samples`` samples runs as."""
    return max(1, math.ceil(int(n_samples) / (30 * SAMPLE_RATE_HZ)))
