"""The paper's three settings, derived from model and corpus languages.

- ``mono``: train and test on the model's own language;
- ``cross``: train on the model's language, test on each other language (the mono heads,
  never retrained);
- ``trans``: train and test on another language.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SETTINGS: tuple[str, ...] = ("mono", "cross", "trans")


@dataclass(frozen=True)
class Condition:
    """One train/test pairing of a model. ``test_corpora`` share the heads trained on
    ``train_corpus`` (several only for ``cross``)."""

    model: str
    setting: str
    train_corpus: str
    test_corpus: str


def conditions(
    model: str,
    model_language: str,
    corpus_languages: Mapping[str, str],
    settings: Sequence[str] = SETTINGS,
) -> list[Condition]:
    """Every condition of ``settings`` that applies to ``model`` over ``corpus_languages``.

    Parameters
    ----------
    model : model alias
    model_language : the model's pre-training language code (``cn``, ``de``, ``en``...)
    corpus_languages : corpus name -> language code
    settings : subset of :data:`SETTINGS`

    Examples
    --------
    >>> [(c.setting, c.train_corpus, c.test_corpus) for c in conditions(
    ...     "w2v2-cn", "cn", {"esd": "cn", "pavoque": "de"})]
    [('mono', 'esd', 'esd'), ('cross', 'esd', 'pavoque'), ('trans', 'pavoque', 'pavoque')]
    """
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; choose from {list(SETTINGS)}")
    native = [c for c, lang in corpus_languages.items() if lang == model_language]
    foreign = [c for c, lang in corpus_languages.items() if lang != model_language]
    out: list[Condition] = []
    if "mono" in settings:
        out += [Condition(model, "mono", c, c) for c in native]
    if "cross" in settings:
        out += [Condition(model, "cross", n, f) for n in native for f in foreign]
    if "trans" in settings:
        out += [Condition(model, "trans", f, f) for f in foreign]
    return out


def setting_of(model_language: str, train_language: str, test_language: str) -> str:
    """The setting name of one train/test pairing (raises for a pairing the paper lacks)."""
    if train_language == model_language:
        return "mono" if test_language == model_language else "cross"
    if train_language == test_language:
        return "trans"
    raise ValueError(
        f"training on {train_language} and testing on {test_language} with a {model_language} "
        "model is none of mono/cross/trans"
    )
