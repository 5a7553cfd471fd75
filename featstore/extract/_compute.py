"""The model side of extraction: forward a batch, pool on the device, bring results home."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from featstore import forward
from featstore.models.device import resolve_device

FRAME_STRIDE_SAMPLES = 320
"""Samples per output frame of wav2vec 2.0 / WavLM at 16 kHz (product of the strides)."""


@dataclass
class ClipResult:
    """Features of one utterance, on the host.

    mean, std : (S, D) pooled statistics over real frames
    n_frames : frames the model made
    frames : (L_sel, T, D) selected layers' frames, or None
    """

    mean: np.ndarray
    std: np.ndarray
    n_frames: int
    frames: np.ndarray | None


def pick_device(device: str = "auto") -> torch.device:
    """The torch device for ``device`` (``auto``: CUDA when present, else CPU): the one
    rule of :func:`featstore.models.device.resolve_device`, kept under this name."""
    return resolve_device(device)


MMAP_THRESHOLD_BYTES = 16 * 1024 * 1024
"""Blocks from this size up are mmapped and handed back on free (see below)."""


ARENA_MAX = 2
"""glibc malloc arenas for the extraction process (``M_ARENA_MAX``; the default is 8 per core)."""


def limit_heap_fragmentation() -> bool:
    """Give large blocks back to the OS as soon as they are freed (glibc only).

    glibc raises its mmap threshold each time a large mmapped block is freed, after which
    blocks of up to 32 MB come from the heap; hidden states of clips of varying length then
    fragment it and the resident set grows with every clip (measured: 0.9 GB -> 2.3 GB over
    200 clips of wav2vec 2.0 base). A fixed threshold stops the drift; measured on 60
    clips, 2 threads: 128 KiB kept the resident set flat but cost 25% of the speed, 16 MiB
    costs nothing and leaves about a third of the growth. The decoding threads' own arenas
    are capped too (:data:`ARENA_MAX`). Returns whether it was applied.
    """
    from featstore.malloc import M_ARENA_MAX, M_MMAP_THRESHOLD, mallopt

    # the decoding threads would each fragment an arena of their own; a MALLOC_* variable the
    # user set (e.g. MALLOC_MMAP_THRESHOLD_=131072 for a flat resident set) wins (mallopt)
    return mallopt({M_ARENA_MAX: ARENA_MAX, M_MMAP_THRESHOLD: MMAP_THRESHOLD_BYTES})[M_MMAP_THRESHOLD]


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (the matrix products run in bf16, norms and pooling in fp32);
    nothing on CPU, where fp32 is as fast and exact."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compute_dtype(device: torch.device) -> str:
    """Name of the arithmetic used on ``device`` (recorded in the provenance)."""
    return "bfloat16-autocast" if device.type == "cuda" else "float32"


def per_clip_front_end_states(encoder: torch.nn.Module, inputs: Sequence[torch.Tensor]
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states with the convolutional front end run clip by clip, the transformer batched.

    The CPU strategy (``checkpoints.md``): an unpadded clip needs no masked normalisation,
    so the encoder's own fused front end is exact, and no convolution runs over padding
    (the front end is about a third of the compute). Measured on wav2vec 2.0 base, one CPU
    thread, four 3 s clips: 1.08 s CPU time, against 1.52 s for the batched masked front end
    of ``forward.hidden_states`` and 1.30 s for transformers one clip at a time. On CUDA the
    batched front end wins. Same contract as :func:`featstore.forward.hidden_states`.
    """
    device = next(encoder.parameters()).device
    feats = []
    for x in inputs:
        h = encoder.feature_extractor(x.to(device)[None])
        f = forward.project_features(encoder, h.transpose(1, 2))  # every family (HuBERT: no tuple)
        feats.append(f[0])
    lengths = torch.tensor([f.shape[0] for f in feats], device=device)
    features = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    mask = torch.arange(features.shape[1], device=device)[None, :] < lengths[:, None]
    return torch.stack(forward.encoder_states(encoder, features, mask)), mask


class BatchRunner:
    """Forward passes of one model, pooled on its device.

    Parameters
    ----------
    encoder : ``Wav2Vec2Model``/``WavLMModel`` already on ``device``, eval mode
    do_normalize : per-clip zero-mean unit-variance input normalisation
    device : where the encoder lives
    out_dtype : numpy dtype name of the results (``float16``/``float32``)
    frame_layers : hidden-state indices whose frames come back, or None for pooled only
    max_clip_samples : longer clips run in consecutive chunks of this many samples
    input_norm : SpeechBrain ``sentence`` input normalisation settings (``wavlm-emo``:
        each clip's mean removed, ``speechbrain.input_norm``) applied before ``do_normalize``,
        or None
    """

    def __init__(self, encoder: torch.nn.Module, do_normalize: bool, device: torch.device, out_dtype: str,
                 frame_layers: Sequence[int] | None, max_clip_samples: int, input_norm: dict | None = None) -> None:
        self.encoder = encoder
        self.do_normalize = do_normalize
        self.input_norm = input_norm
        self.device = device
        self.out_dtype = getattr(torch, out_dtype)
        self.frame_layers = list(frame_layers) if frame_layers is not None else None
        chunk = max(max_clip_samples // FRAME_STRIDE_SAMPLES, 2) * FRAME_STRIDE_SAMPLES
        self.max_clip_samples = chunk
        self.per_clip_front_end = device.type == "cpu"

    def run(self, waves: Sequence[np.ndarray]) -> list[ClipResult]:
        """Features of each clip of ``waves`` (16 kHz float32), in the same order."""
        if self.input_norm is not None:
            from featstore.models.speechbrain import input_norm

            waves = [input_norm(torch.as_tensor(np.asarray(w, dtype=np.float32)).reshape(-1), self.input_norm)
                     for w in waves]
        prepared = forward.prepare_inputs(waves, self.do_normalize)
        out: list[ClipResult | None] = [None] * len(prepared)
        short = [i for i, x in enumerate(prepared) if len(x) <= self.max_clip_samples]
        for i in range(len(prepared)):
            if i not in short:
                out[i] = self._run_long(prepared[i])
        if short:
            for i, res in zip(short, self._run_batch([prepared[i] for i in short]), strict=True):
                out[i] = res
        return out  # type: ignore[return-value]

    def states(self, inputs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, B, T, D) hidden states and (B, T) mask of prepared clips, by this device's strategy."""
        with torch.inference_mode():
            if forward.family_of(self.encoder).forward_module:  # a family with its own front end (Whisper)
                with autocast_for(self.device):
                    return forward.hidden_states(self.encoder, inputs)
            if self.per_clip_front_end:
                return per_clip_front_end_states(self.encoder, inputs)
            # The front end stays in float32: its masked group norm sums statistics over
            # thousands of samples per channel, too many for bf16. The transformer (about
            # two thirds of the compute) runs under autocast.
            features, mask = forward.front_end(self.encoder, inputs)
            with autocast_for(self.device):
                states = forward.encoder_states(self.encoder, features, mask)
            return torch.stack(states), mask

    def _run_batch(self, inputs: list[torch.Tensor]) -> list[ClipResult]:
        states, mask = self.states(inputs)
        with torch.inference_mode():
            mean, std = forward.masked_mean_std(states, mask)
            counts = mask.sum(dim=1).cpu().tolist()
            mean_h = mean.to(self.out_dtype).cpu().numpy()
            std_h = std.to(self.out_dtype).cpu().numpy()
            frames_h = None
            if self.frame_layers is not None:
                # Only the selected layers cross to the host, in the stored dtype.
                frames_h = states[self.frame_layers].to(self.out_dtype).cpu().numpy()
        return [
            ClipResult(mean_h[:, b], std_h[:, b], int(n),
                       frames_h[:, b, :n] if frames_h is not None else None)
            for b, n in enumerate(counts)
        ]

    def _run_long(self, wave: torch.Tensor) -> ClipResult:
        step = self.max_clip_samples
        starts = list(range(0, len(wave), step))
        if len(starts) > 1 and len(wave) - starts[-1] < 2 * FRAME_STRIDE_SAMPLES:
            starts.pop()  # a tail too short for a frame joins the previous chunk
        bounds = [(s, starts[i + 1] if i + 1 < len(starts) else len(wave)) for i, s in enumerate(starts)]
        total = total_sq = None
        n_total = 0
        frames: list[np.ndarray] = []
        for lo, hi in bounds:
            states, mask = self.states([wave[lo:hi]])
            with torch.inference_mode():
                x = states[:, 0, : int(mask[0].sum())].to(torch.float64)
                s, sq = x.sum(dim=1), (x * x).sum(dim=1)
                total = s if total is None else total + s
                total_sq = sq if total_sq is None else total_sq + sq
                n_total += x.shape[1]
                if self.frame_layers is not None:
                    frames.append(x[self.frame_layers].to(self.out_dtype).cpu().numpy())
        mean = total / n_total
        std = (total_sq / n_total - mean * mean).clamp(min=0).sqrt()
        return ClipResult(mean.to(self.out_dtype).cpu().numpy(), std.to(self.out_dtype).cpu().numpy(), n_total,
                          np.concatenate(frames, axis=1) if frames else None)
