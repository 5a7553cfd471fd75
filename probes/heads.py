"""Probe heads: an explicit registry of the classifiers trained on pooled layer features.

``mlp`` is the paper's code (768 -> 128 -> 16 -> 4 with ReLU), ``linear`` the paper's text
(768 -> 4); both are trained with AdamW by :mod:`probes._stacked`. ``logreg`` is a
closed-form multinomial logistic regression (L-BFGS) on standardised features for quick
looks (:mod:`probes._logreg`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HeadSpec:
    """One head kind.

    Attributes
    ----------
    name : registry key
    hidden : widths of the hidden layers (ReLU between layers); empty = linear
    kind : ``"sgd"`` (trained by the stacked AdamW trainer) or ``"closed"`` (logreg)
    description : one line for help texts
    """

    name: str
    hidden: tuple[int, ...]
    kind: str
    description: str

    def widths(self, input_dim: int, n_classes: int) -> tuple[int, ...]:
        """All layer widths from input to output, e.g. ``(768, 128, 16, 4)``."""
        return (input_dim, *self.hidden, n_classes)


HEADS: dict[str, HeadSpec] = {
    "mlp": HeadSpec("mlp", (128, 16), "sgd", "768->128->16->4 with ReLU (the paper's code)"),
    "linear": HeadSpec("linear", (), "sgd", "768->4 (the paper's text)"),
    "logreg": HeadSpec("logreg", (), "closed", "multinomial logistic regression, L-BFGS, standardised"),
}
"""Registered heads, by name."""
