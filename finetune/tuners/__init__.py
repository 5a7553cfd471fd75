"""Adapter methods, one folder each (``config``, ``layer``, ``model``), and the one entry
point :func:`apply_strategy`.

Every adapter parameter has a name segment starting with its method's prefix (``lora_``,
``ba_``, ``wg_``), so :func:`adapter_state_dict` can save just them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from featstore.forward import n_layers_of
from finetune.tuners.ba import BASettings, apply_ba
from finetune.tuners.lora import LoraSettings, apply_lora
from finetune.tuners.wg import WGSettings, apply_wg

# method -> (function that applies it, its parameter name prefix). The order of this dict is
# the order of application: LoRA names modules by their original paths, and the other two
# wrap modules (changing those paths), so LoRA goes first and the layer-wrapping WG last.
METHODS: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "lora": (apply_lora, "lora_"),
    "ba": (apply_ba, "ba_"),
    "wg": (apply_wg, "wg_"),
}
STRATEGIES: tuple[str, ...] = ("lora", "ba", "wg", "lora+ba", "lora+wg", "ba+wg", "lora+ba+wg")
ADAPTER_PREFIXES: tuple[str, ...] = tuple(prefix for _, prefix in METHODS.values())


def parse_strategy(strategy: str) -> tuple[str, ...]:
    """``"lora+ba+wg"`` -> ``("lora", "ba", "wg")`` in application order; raises for an
    unknown or repeated method."""
    parts = [p.strip().lower() for p in strategy.split("+") if p.strip()]
    unknown = [p for p in parts if p not in METHODS]
    if unknown or not parts:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {list(STRATEGIES)}")
    if len(set(parts)) != len(parts):
        raise ValueError(f"strategy {strategy!r} names a method twice")
    return tuple(m for m in METHODS if m in parts)


def canonical_strategy(strategy: str) -> str:
    """The strategy's name in the canonical order (``"wg+lora"`` -> ``"lora+wg"``)."""
    return "+".join(parse_strategy(strategy))


@dataclass(frozen=True)
class AdapterConfig:
    """Where and with which settings to adapt an encoder.

    ``layers`` are 0-based indices into ``encoder.encoder.layers`` (layer ``i`` produces
    hidden state ``i + 1``).
    """

    layers: tuple[int, ...]
    lora: LoraSettings = field(default_factory=LoraSettings)
    ba: BASettings = field(default_factory=BASettings)
    wg: WGSettings = field(default_factory=WGSettings)

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("no layers to adapt")
        if min(self.layers) < 0:
            raise ValueError(f"layer indices must be >= 0, got {self.layers}")


def apply_strategy(encoder: nn.Module, strategy: str, config: AdapterConfig) -> nn.Module:
    """Add the adapters of ``strategy`` to ``encoder`` (a bare encoder of any family in
    ``featstore.models.registry.FAMILIES``) in place, freeze every other parameter, and
    return it."""
    methods = parse_strategy(strategy)
    n_layers = n_layers_of(encoder)
    if max(config.layers) >= n_layers:
        raise ValueError(f"layer index {max(config.layers)} out of range: the encoder has {n_layers} layers")
    for p in encoder.parameters():
        p.requires_grad_(False)
    for name in methods:
        apply, _ = METHODS[name]
        apply(encoder, config.layers, getattr(config, name))
    for pname, p in encoder.named_parameters():
        p.requires_grad_(is_adapter_name(pname))
    return encoder


def is_adapter_name(name: str) -> bool:
    """Whether a parameter name belongs to an adapter (a segment starts with a prefix)."""
    return any(seg.startswith(ADAPTER_PREFIXES) for seg in name.split("."))


def adapter_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter parameters of ``module`` (detached copies), keyed by their names."""
    return {n: p.detach().clone() for n, p in module.named_parameters() if is_adapter_name(n)}


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts of ``module``."""
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return trainable, total


__all__ = [
    "ADAPTER_PREFIXES",
    "METHODS",
    "STRATEGIES",
    "AdapterConfig",
    "BASettings",
    "LoraSettings",
    "WGSettings",
    "adapter_state_dict",
    "apply_strategy",
    "canonical_strategy",
    "count_parameters",
    "is_adapter_name",
    "parse_strategy",
]
