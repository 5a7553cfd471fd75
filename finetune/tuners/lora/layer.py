"""A WavLM attention whose q/k/v/out projections are called as modules.

transformers' ``WavLMAttention`` hands the raw ``q_proj.weight``/``k_proj.weight``/
``v_proj.weight`` to ``F.multi_head_attention_forward``, so a LoRA wrapper around those
projections is bypassed and its parameters never get a gradient
(``../shared/specs/checkpoints.md``). This subclass replaces only that fused call: the
relative position bias and its gating (``forward``) are inherited unchanged, and the
attention itself is the same arithmetic (scaled dot product with the gated bias added and
padded keys masked).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.models.wavlm.modeling_wavlm import WavLMAttention


class ModularWavLMAttention(WavLMAttention):
    """``WavLMAttention`` computing its projections through ``self.q_proj(...)`` etc."""

    def torch_multi_head_self_attention(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        gated_position_bias: torch.Tensor,
    ) -> tuple[torch.Tensor, None]:
        """Self-attention of ``hidden_states`` (B, T, D) with ``gated_position_bias``
        (B * heads, T, T) added to the logits; ``attention_mask`` (B, T) is 1/True on real
        frames. Returns the (B, T, D) output and ``None`` for the weights."""
        bsz, t, d = hidden_states.shape
        heads = self.num_heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(bsz, t, heads, self.head_dim).transpose(1, 2)

        q = split(self.q_proj(hidden_states))
        k = split(self.k_proj(hidden_states))
        v = split(self.v_proj(hidden_states))
        bias = gated_position_bias.view(bsz, heads, t, t).to(q.dtype)
        if attention_mask is not None:
            # same rule as the original: key_padding_mask = attention_mask.ne(1)
            padded = attention_mask.ne(1)[:, None, None, :]
            bias = bias.masked_fill(padded, float("-inf"))
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0
        )
        out = out.transpose(1, 2).reshape(bsz, t, d)
        return self.out_proj(out), None


def make_modular(attention: torch.nn.Module) -> None:
    """Switch a ``WavLMAttention`` in place to :class:`ModularWavLMAttention` (same
    parameters, same state dict keys); a no-op for any other attention."""
    if isinstance(attention, WavLMAttention) and not isinstance(attention, ModularWavLMAttention):
        attention.__class__ = ModularWavLMAttention
