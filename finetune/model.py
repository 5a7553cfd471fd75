"""The fine-tuned SER model: an encoder truncated at layer k with adapters, mean pooling
over real frames, and a classification head.

Hidden state ``k`` (the output of layer ``k``, 1-based) is pooled. With scope
``every-layer`` layers 1..k carry adapters and the trainable part starts at hidden state 0
(the transformer input); with ``target-layer`` only layer k does and it starts at hidden
state k-1. Everything below that start is frozen and can be read from featstore's cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from featstore.forward import encoder_layers, set_encoder_layers
from featstore.manifest import CANONICAL_EMOTIONS
from finetune.encoder import run_layers, states_from_waves
from finetune.heads import HEADS, make_head
from finetune.tuners import (
    AdapterConfig,
    BASettings,
    LoraSettings,
    WGSettings,
    adapter_state_dict,
    apply_strategy,
    canonical_strategy,
)

SCOPES: tuple[str, ...] = ("every-layer", "target-layer")


@dataclass(frozen=True)
class PeftModelConfig:
    """What to build on top of a base encoder (defaults: the paper's runs)."""

    layer: int = field(metadata={"help": "k: pool hidden state k (output of layer k, 1-based)"})
    strategy: str = field(default="lora+ba+wg", metadata={"help": "adapter methods joined by '+'"})
    scope: str = field(default="every-layer", metadata={"help": "adapt layers 1..k or only layer k"})
    head: str = field(default="mlp", metadata={"help": "classification head (mlp or linear)"})
    n_classes: int = field(default=len(CANONICAL_EMOTIONS), metadata={"help": "number of classes"})
    lora: LoraSettings = field(default_factory=LoraSettings)
    ba: BASettings = field(default_factory=BASettings)
    wg: WGSettings = field(default_factory=WGSettings)
    init_seed: int = field(default=0, metadata={"help": "seed of the adapters' and head's init"})
    train_mode_regularisation: bool = field(default=False, metadata={
        "help": "in training, the whole encoder in train mode with the checkpoint's own SpecAugment, LayerDrop "
                "and dropouts (the authors' code); off: frozen parts run in eval mode"})

    def __post_init__(self) -> None:
        if self.layer < 1:
            raise ValueError(f"layer must be >= 1 (hidden state 0 has no layer to adapt), got {self.layer}")
        object.__setattr__(self, "strategy", canonical_strategy(self.strategy))
        if self.scope not in SCOPES:
            raise ValueError(f"unknown scope {self.scope!r}; choose from {list(SCOPES)}")
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; choose from {list(HEADS)}")
        if self.n_classes < 2:
            raise ValueError(f"need at least 2 classes, got {self.n_classes}")

    @property
    def adapted_layers(self) -> tuple[int, ...]:
        """0-based indices of the layers that get adapters."""
        return tuple(range(self.layer)) if self.scope == "every-layer" else (self.layer - 1,)

    @property
    def input_state(self) -> int:
        """The hidden state the trainable part starts from (everything below is frozen)."""
        return 0 if self.scope == "every-layer" else self.layer - 1

    def to_dict(self) -> dict:
        """JSON-ready dict (round-trips through :meth:`from_dict`)."""
        return {
            "layer": self.layer, "strategy": self.strategy, "scope": self.scope, "head": self.head,
            "n_classes": self.n_classes, "init_seed": self.init_seed,
            "train_mode_regularisation": self.train_mode_regularisation,
            "lora": {"r": self.lora.r, "alpha": self.lora.alpha, "dropout": self.lora.dropout,
                     "targets": list(self.lora.targets)},
            "ba": {"reduction": self.ba.reduction, "zero_init_up": self.ba.zero_init_up},
            "wg": {"init_logit": self.wg.init_logit},
        }

    @classmethod
    def from_dict(cls, d: dict) -> PeftModelConfig:
        """Inverse of :meth:`to_dict`."""
        lora = dict(d.get("lora", {}))
        if "targets" in lora:
            lora["targets"] = tuple(lora["targets"])
        return cls(
            layer=int(d["layer"]), strategy=d["strategy"], scope=d["scope"], head=d["head"],
            n_classes=int(d["n_classes"]), init_seed=int(d.get("init_seed", 0)),
            train_mode_regularisation=bool(d.get("train_mode_regularisation", False)),
            lora=LoraSettings(**lora), ba=BASettings(**d.get("ba", {})), wg=WGSettings(**d.get("wg", {})),
        )


class SERModel(nn.Module):
    """Adapted, truncated encoder + mean pooling + head.

    Parameters
    ----------
    encoder : a bare encoder of a registered family (``Wav2Vec2Model``, ``WavLMModel``,
        ``HubertModel``, ``Data2VecAudioModel``); changed in place (layers
        above k dropped, adapters added, all base weights frozen)
    config : :class:`PeftModelConfig`
    do_normalize : per-clip input normalisation of the base model
    """

    def __init__(self, encoder: nn.Module, config: PeftModelConfig, do_normalize: bool) -> None:
        super().__init__()
        n_full = len(encoder_layers(encoder))
        if config.layer > n_full:
            raise ValueError(f"layer {config.layer} out of range: the model has {n_full} layers")
        self.config = config
        self.do_normalize = bool(do_normalize)
        self.final_norm = bool(getattr(encoder.config, "do_stable_layer_norm", False)) and config.layer == n_full
        # layers above k never run: drop them so they cost no memory
        set_encoder_layers(encoder, encoder_layers(encoder)[: config.layer])
        if not config.train_mode_regularisation:
            # frozen parts compute exactly what featstore caches
            encoder.config.apply_spec_augment = False
            encoder.config.layerdrop = 0.0
        with torch.random.fork_rng(devices=[]):
            # adapter and head init draw from a seeded generator, not the caller's global one
            torch.manual_seed(config.init_seed)
            apply_strategy(encoder, config.strategy, AdapterConfig(
                layers=config.adapted_layers, lora=config.lora, ba=config.ba, wg=config.wg))
            ref = next(encoder.parameters())
            self.head = make_head(config.head, encoder.config.hidden_size, config.n_classes).to(ref.device)
        self.encoder = encoder
        self.use_checkpointing = False
        self.train(False)

    def train(self, mode: bool = True) -> SERModel:
        """Train mode for the head and the adapted layers only: frozen parts always run in
        eval mode, so what they compute equals featstore's cached states. With
        ``train_mode_regularisation`` the whole encoder follows ``mode`` (the authors'
        ``.train()``): its dropouts, SpecAugment and LayerDrop apply in training."""
        self.training = mode
        if self.config.train_mode_regularisation:
            self.encoder.train(mode)
            self.head.train(mode)
            return self
        self.encoder.eval()
        self.head.train(mode)
        for i in self.config.adapted_layers:
            encoder_layers(self.encoder)[i].train(mode)
        return self

    def input_states(self, waves: Sequence[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen hidden state :attr:`PeftModelConfig.input_state` of raw clips: (B, T, D)
        and the (B, T) bool mask."""
        spec_augment = self.training and self.config.train_mode_regularisation
        return states_from_waves(self.encoder, waves, self.do_normalize, self.config.input_state,
                                 spec_augment=spec_augment)

    def pooled(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean of hidden state k over real frames: (B, T, D) hidden state
        ``input_state`` -> (B, D)."""
        out = run_layers(self.encoder, h, mask, self.config.input_state, self.config.layer,
                         use_checkpointing=self.use_checkpointing and self.training,
                         final_norm=self.final_norm, layerdrop=self._layerdrop())
        m = mask.to(out.dtype)[..., None]
        return (out * m).sum(1) / m.sum(1).clamp(min=1.0)

    def _layerdrop(self) -> float:
        if self.training and self.config.train_mode_regularisation:
            return float(getattr(self.encoder.config, "layerdrop", 0.0) or 0.0)
        return 0.0

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits (B, n_classes) from hidden state ``input_state`` (B, T, D) and mask (B, T)."""
        return self.head(self.pooled(h, mask))

    def forward_waves(self, waves: Sequence[np.ndarray | torch.Tensor]) -> torch.Tensor:
        """Logits (B, n_classes) of raw 16 kHz clips (1-D float arrays, any lengths)."""
        h, mask = self.input_states(waves)
        return self(h, mask)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Adapter and head parameters (what a checkpoint holds), detached copies."""
        out = {f"encoder.{n}": p for n, p in adapter_state_dict(self.encoder).items()}
        out.update({f"head.{n}": p.detach().clone() for n, p in self.head.named_parameters()})
        return out

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load what :meth:`trainable_state_dict` returned; every key must match exactly."""
        own = dict(self.named_parameters())
        expected = set(self.trainable_state_dict())
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise ValueError(f"adapter state does not fit this model: missing {sorted(missing)[:5]}, "
                             f"unexpected {sorted(unexpected)[:5]}")
        with torch.no_grad():
            for name, value in state.items():
                if own[name].shape != value.shape:
                    raise ValueError(f"{name}: shape {tuple(value.shape)} != model's {tuple(own[name].shape)}")
                own[name].copy_(value.to(own[name].device, own[name].dtype))
