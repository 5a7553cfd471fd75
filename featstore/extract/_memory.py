"""An estimate of the activation memory of one forward batch, for planning batches.

Batches are capped by seconds of padded audio (``--max-batch-seconds``) and by this
estimate (``--max-batch-memory-gb``), so that a 24-layer 1024-wide model (XLS-R, MMS,
WavLM large) on clips of up to 30 s stays within a 24 GiB CPU machine. The estimate counts
the tensors that are alive at once in the three phases of a batch (``BatchRunner``):

1. **front end**: the convolutional feature encoder. Its first convolution makes
   ``C`` channels at one frame per ``stride0`` samples (wav2vec 2.0 family: 512 channels,
   one frame per 5 samples); that output, its normalisation (with a transposed copy for a
   layer norm), its activation and the next convolution's output are alive together:
   ``4 * C * n_samples / stride0`` floats per clip (on CPU one clip at a time, the longest;
   on CUDA the whole padded batch), plus the padded waveform.
2. **transformer**: the hidden states kept so far (all ``S = n_layers + 1`` of them, since
   every state is pooled), plus one layer's transients: the attention, the feed-forward's
   two ``B * T * F`` tensors and about six ``B * T * D`` (q, k, v, the attention output,
   residuals). Attention through ``scaled_dot_product_attention`` (transformers' ``sdpa``,
   the default of wav2vec 2.0, HuBERT, data2vec-audio and Whisper) never holds the
   ``T x T`` matrix (measured: 4 clips of 20 s, 32 heads, 0.08 GiB in all), only the
   boolean padding mask, ``B * T^2`` bytes. Eager attention holds ``k_attn * B * H * T^2``
   floats: scores, softmax, the expanded mask; WavLM's own attention (always eager) also
   keeps its relative position bias and a gated copy per layer (measured: 5.0 copies).
3. **pooling**: the stacked states and their list (``2 * S * B * T * D``) or the stacked
   states and two temporaries of the masked mean / standard deviation
   (``3 * S * B * T * D``), plus the selected frame layers copied to the host
   (``L_sel * B * T * D`` in float32 and again in the stored type).

``T`` is frames of the longest clip (50 per second); ``B`` clips; ``D`` width; ``H``
heads; ``F`` feed-forward width; floats are 4 bytes (float32, the CPU arithmetic). The
Whisper encoder always sees whole 30 s windows (``T = 1500``; a longer clip is one window
per 30 s, each a row of the batch), whatever the clip's length.

The peak is the largest phase. The constants were checked against the peak resident set
of real forward passes (``docs/large-models.md``); the estimate errs high, never low, on
the shapes measured. It is a planning figure, not a guarantee: the allocator's own slack,
the model's weights (``4 * n_params`` bytes) and the decoded audio queue come on top.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

FLOAT32_BYTES = 4
FRAMES_PER_SECOND = 50.0
"""Output frames per second of every family here (20 ms hop; wav2vec 2.0's convolutions
give 49 for a 1 s clip)."""
SAMPLE_RATE_HZ = 16000
WHISPER_WINDOW_S = 30.0
WHISPER_WINDOW_FRAMES = 1500
GIB = 2**30

EAGER_FAMILIES = ("wavlm",)
"""Families whose attention materialises the T x T matrix whatever the config says."""
ATTENTION_COPIES = {"wavlm": 6}
"""``k_attn``: B x H x T x T float tensors alive at once in one eager attention layer;
WavLM keeps its relative position bias, a gated copy, the merged mask, scores, softmax and
weights (measured: 5.0 copies alive, rounded up). Other eager attention: scores, softmax
and the expanded mask."""
DEFAULT_ATTENTION_COPIES = 3


def _first(config: object, *names: str, default: object = None) -> object:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    if default is None:
        raise ValueError(f"{type(config).__name__} has none of the fields {', '.join(names)}: cannot estimate "
                         "its activation memory")
    return default


@dataclass(frozen=True)
class ActivationShape:
    """The sizes of a model that decide its activation memory.

    Attributes
    ----------
    model_type : transformers ``model_type`` (``wav2vec2``, ``wavlm``, ``hubert``,
        ``data2vec-audio``, ``whisper`` ...)
    n_layers : transformer layers (hidden states = ``n_layers + 1``)
    width : hidden size ``D``
    heads : attention heads ``H``
    ffn_width : feed-forward width ``F``
    conv_channels : channels of the front end's first convolution ``C``
    first_stride : input samples per frame of that convolution
    window_s : fixed input window in seconds (Whisper: 30), or None
    eager_attention : the attention materialises ``T x T`` (WavLM; ``attn_implementation
        ="eager"``) rather than running through ``sdpa``
    """

    model_type: str
    n_layers: int
    width: int
    heads: int
    ffn_width: int
    conv_channels: int
    first_stride: int
    window_s: float | None = None
    eager_attention: bool = False

    @property
    def attention_copies(self) -> int:
        """``k_attn`` of this family (see :data:`ATTENTION_COPIES`)."""
        return ATTENTION_COPIES.get(self.model_type, DEFAULT_ATTENTION_COPIES)


def activation_shape(config: object) -> ActivationShape:
    """The :class:`ActivationShape` of a transformers config (``Wav2Vec2Config``,
    ``WavLMConfig``, ``HubertConfig``, ``Data2VecAudioConfig``, ``WhisperConfig`` or a
    whole-model config whose encoder uses these field names); raises ``ValueError`` for
    a config without a width, layer count or head count."""
    model_type = str(getattr(config, "model_type", "") or "")
    width = int(_first(config, "hidden_size", "d_model"))
    eager = model_type in EAGER_FAMILIES or getattr(config, "_attn_implementation", None) == "eager"
    if model_type == "whisper":
        # log-mel (100 frames/s) -> conv1 (D channels, stride 1) -> conv2 (stride 2): 50 frames/s
        return ActivationShape(model_type, int(_first(config, "encoder_layers", "num_hidden_layers")), width,
                               int(_first(config, "encoder_attention_heads", "num_attention_heads")),
                               int(_first(config, "encoder_ffn_dim", "intermediate_size")),
                               conv_channels=width, first_stride=SAMPLE_RATE_HZ // 100, window_s=WHISPER_WINDOW_S,
                               eager_attention=eager)
    conv_dim = _first(config, "conv_dim", default=(512,))
    conv_stride = _first(config, "conv_stride", default=(5,))
    return ActivationShape(model_type, int(_first(config, "num_hidden_layers", "encoder_layers")), width,
                           int(_first(config, "num_attention_heads", "encoder_attention_heads")),
                           int(_first(config, "intermediate_size", "encoder_ffn_dim", default=4 * width)),
                           conv_channels=int(max(conv_dim)), first_stride=int(conv_stride[0]), eager_attention=eager)


def _rows_and_frames(shape: ActivationShape, durations_s: Sequence[float]) -> tuple[int, int, float]:
    """(batch rows B, frames per row T, longest row in seconds) of clips of ``durations_s``."""
    if shape.window_s is not None:
        rows = sum(max(1, math.ceil(d / shape.window_s)) for d in durations_s)
        return rows, int(shape.window_s * FRAMES_PER_SECOND), shape.window_s
    longest = max(durations_s)
    return len(durations_s), max(1, math.ceil(longest * FRAMES_PER_SECOND)), longest


def batch_activation_bytes(shape: ActivationShape, durations_s: Sequence[float], *, per_clip_front_end: bool = True,
                           n_frame_layers: int = 0, stored_bytes: int = 2,
                           compute_bytes: int = FLOAT32_BYTES) -> int:
    """Estimated peak activation bytes of one forward batch of clips of ``durations_s``
    seconds (see the module docstring for the formula).

    Parameters
    ----------
    shape : the model's :class:`ActivationShape`
    durations_s : each clip's duration in seconds (at most ``--max-clip-seconds``: longer
        clips run in chunks of that length, one chunk at a time)
    per_clip_front_end : the front end runs one clip at a time (CPU) rather than on the
        padded batch (CUDA)
    n_frame_layers : hidden states whose frames are copied to the host (``--frame-layers``)
    stored_bytes : bytes per stored float (2 for float16, 4 for float32)
    compute_bytes : bytes per float of the arithmetic (4: float32)
    """
    if not durations_s:
        return 0
    b = compute_bytes
    rows, t, longest = _rows_and_frames(shape, durations_s)
    s, d = shape.n_layers + 1, shape.width
    samples = longest * SAMPLE_RATE_HZ
    front_rows = 1 if per_clip_front_end else rows
    front = front_rows * (4 * shape.conv_channels * samples / shape.first_stride + samples) * b
    states = s * rows * t * d * b
    if shape.eager_attention:
        attention = shape.attention_copies * rows * shape.heads * t * t * b
    else:
        attention = rows * t * t  # sdpa: only the boolean padding mask is T x T
    layer = attention + (2 * rows * t * shape.ffn_width + 6 * rows * t * d) * b
    pooling = 3 * states + n_frame_layers * rows * t * d * (b + stored_bytes)
    return int(max(front, states + layer, pooling))


def gib(n_bytes: float) -> float:
    """Bytes in GiB."""
    return n_bytes / GIB
