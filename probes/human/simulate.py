"""Simulated listeners: answers drawn from a stated noise model, written as webMUSHRA
``lss.csv`` files so that a demo can run the real ingest path end to end.

Noise model: for each (group, language) cell either an accuracy ``acc`` (the true label
with probability ``acc``, each other label with ``(1 - acc) / (K - 1)``) or a full
row-stochastic confusion matrix (row = true label, order of ``labels``). Cells not given
use ``default``; ``"*"`` matches any group or language.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from featstore.manifest import CANONICAL_EMOTIONS
from probes.human import webmushra
from probes.human.build import check_key

Cell = float | Sequence[Sequence[float]]


@dataclass(frozen=True)
class NoiseModel:
    """Per-group per-language answer distributions.

    Attributes
    ----------
    default : accuracy (float in [0, 1]) or K x K confusion matrix used where no cell is given
    cells : ``{(group, language): accuracy or matrix}``; ``"*"`` is a wildcard
    labels : class order of the matrices
    """

    default: Cell = 0.8
    cells: Mapping[tuple[str, str], Cell] = field(default_factory=dict)
    labels: tuple[str, ...] = CANONICAL_EMOTIONS

    def __post_init__(self) -> None:
        for where, cell in [("default", self.default), *self.cells.items()]:
            self._matrix(cell, where)

    def _matrix(self, cell: Cell, where: object) -> np.ndarray:
        k = len(self.labels)
        if isinstance(cell, int | float):
            if not 0.0 <= float(cell) <= 1.0:
                raise ValueError(f"noise model {where}: accuracy {cell} not in [0, 1]")
            off = (1.0 - float(cell)) / (k - 1) if k > 1 else 0.0
            return np.full((k, k), off) + np.eye(k) * (float(cell) - off)
        m = np.asarray(cell, dtype=float)
        if m.shape != (k, k) or (m < 0).any() or not np.allclose(m.sum(axis=1), 1.0):
            raise ValueError(f"noise model {where}: need a {k}x{k} matrix with rows summing to 1")
        return m

    def matrix(self, group: str, language: str) -> np.ndarray:
        """The confusion matrix (row = true label) of one group on one language."""
        for g, lang in ((group, language), (group, "*"), ("*", language), ("*", "*")):
            if (g, lang) in self.cells:
                return self._matrix(self.cells[(g, lang)], (g, lang))
        return self._matrix(self.default, "default")


def simulate_answers(
    key: pl.DataFrame,
    groups: Mapping[str, int | Sequence[str]],
    noise_model: NoiseModel,
    seed: int = 0,
    out_dir: str | Path | None = None,
    test_id: str = "ser-test",
    second_languages: str = "en",
    pad_ratings: bool = False,
) -> pl.DataFrame:
    """Draw every listener's answers and (optionally) write them as webMUSHRA would.

    Parameters
    ----------
    key : key table (stimulus, corpus, utt_id, language, emotion, ...)
    groups : group -> number of listeners (ids ``<group>-01``...) or list of listener ids;
        the group is written as the ``native_language`` answer
    noise_model : see :class:`NoiseModel`
    seed : seed of the answers and of each listener's page order
    out_dir : when given, rows are appended to ``<out_dir>/results/<test id>/lss.csv``
        (header only when the file is new, as ``write.php`` does)
    test_id : webMUSHRA ``testId`` (sanitised for the folder name)
    second_languages : the ``second_languages`` answer of every simulated listener
    pad_ratings : write ratings as ``" value "`` as older webMUSHRA versions do

    Returns
    -------
    The rows in ``lss.csv`` layout (``session_test_id``, questionnaire columns,
    ``trial_id``, ``stimuli_rating``, ``stimuli``, ``rating_time``), strings.
    """
    key = check_key(key, labels=noise_model.labels)
    rng = np.random.default_rng(seed)
    labels = list(noise_model.labels)
    unknown = sorted(set(key["emotion"].to_list()) - set(labels))
    if unknown:
        raise ValueError(f"key labels {unknown} are not in the noise model's labels {labels}")
    qnames = [q["name"] for q in webmushra.questionnaire([], ask_listener_id=True, ask_email=True)]
    header = ["session_test_id", *qnames, *webmushra.LSS_COLUMNS]
    rows: list[list[str]] = []
    stimuli = key.select("stimulus", "language", "emotion").rows()
    for group, members in groups.items():
        ids = ([f"{group}-{i + 1:02d}" for i in range(int(members))]
               if isinstance(members, int) else [str(m) for m in members])
        for listener in ids:
            meta = {"listener_id": listener, "native_language": group, "native_language_other": "",
                    "dialect": "none", "second_languages": second_languages, "l2_level": "b",
                    "email": ""}
            for i in rng.permutation(len(stimuli)):
                stim, lang, true = stimuli[i]
                probs = noise_model.matrix(group, lang)[labels.index(true)]
                answer = labels[int(rng.choice(len(labels), p=probs))]
                rating = f" {answer} " if pad_ratings else answer
                time_ms = str(int(rng.integers(2000, 9000)))
                rows.append([test_id, *(meta[q] for q in qnames), f"trial_{stim}", rating, stim, time_ms])
    if out_dir is not None:
        path = Path(out_dir) / "results" / webmushra.sanitize_test_id(test_id) / "lss.csv"
        webmushra.append_results_csv(path, header, rows)
    return pl.DataFrame(rows, schema=header, orient="row")


# The paper's human confusion matrices (Table III (a), (c), (e), (g), (k), (m); rows = true
# A H N S) and its Table II accuracies on Tianjin speech, where no matrix is given.
PAPER_HUMAN_CONFUSIONS: dict[tuple[str, str], tuple[tuple[float, ...], ...]] = {
    ("cn", "cn"): ((.71, .24, .06, 0), (0, .82, .18, 0), (0, .10, .86, .04), (0, .01, .18, .81)),
    ("de", "de"): ((.97, .03, 0, 0), (0, .94, .05, 0), (0, 0, .83, .17), (0, 0, .04, .96)),
    ("cn", "de"): ((.81, .13, .06, .01), (.21, .38, .42, 0), (.01, .01, .93, .04), (.01, 0, .15, .83)),
    ("de", "cn"): ((.88, .07, .06, 0), (.08, .75, .15, .01), (.03, .03, .76, .18), (0, .03, .06, .92)),
    ("cn", "en"): ((.54, .22, .13, .11), (.14, .61, .19, .06), (.04, .28, .58, .10), (.03, .01, .15, .81)),
    ("de", "en"): ((.78, .03, .04, .15), (.06, .69, .22, .03), (.15, .13, .60, .13), (.01, .01, .10, .88)),
}
PAPER_TJ_ACCURACY: dict[str, float] = {"cn": 0.675, "de": 0.292}


def paper_noise_model(default: float = 0.7) -> NoiseModel:
    """Simulated listeners who answer like the paper's: CN and DE groups with the
    published confusion matrices (rows re-normalised: the paper rounds to 2 decimals)
    and the published accuracies on TJ speech; ``default`` elsewhere."""
    cells: dict[tuple[str, str], Cell] = {
        k: (np.asarray(m) / np.asarray(m).sum(axis=1, keepdims=True)).tolist()
        for k, m in PAPER_HUMAN_CONFUSIONS.items()
    }
    cells |= {(g, "tj"): acc for g, acc in PAPER_TJ_ACCURACY.items()}
    return NoiseModel(default=default, cells=cells)
