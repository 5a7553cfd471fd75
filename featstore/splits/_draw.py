"""Balanced random draws shared by the fold generator and the listening-subset selector."""

from __future__ import annotations

import numpy as np


def round_robin(by_group: dict[str, list[str]], n: int, rng: np.random.Generator) -> list[str]:
    """Draw ``n`` distinct items spread as evenly as possible over groups.

    Each group's items are shuffled, then taken one per group per round (the group order
    of a round is shuffled once), so every prefix of the result is balanced over groups
    as far as their sizes allow. Deterministic for the state of ``rng`` and the content of
    ``by_group`` (keys and items are sorted first, so input order does not matter).

    Parameters
    ----------
    by_group : dict[str, list[str]]
        Items (utterance ids) per group (speaker).
    n : int
        How many items to draw; at most the total number of items.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    list[str]
        ``n`` items in draw order.
    """
    keys = sorted(by_group)
    shuffled = {}
    for k in keys:
        ordered = sorted(by_group[k])  # once per group: sorting per item made this quadratic
        shuffled[k] = [ordered[i] for i in rng.permutation(len(ordered))]
    order = [keys[i] for i in rng.permutation(len(keys))]
    total = sum(len(v) for v in shuffled.values())
    if n > total:
        raise ValueError(f"cannot draw {n} items from {total}")
    out: list[str] = []
    depth = 0
    while len(out) < n:
        for key in order:
            if depth < len(shuffled[key]):
                out.append(shuffled[key][depth])
                if len(out) == n:
                    break
        depth += 1
    return out


def spread(total: int, n_bins: int, rng: np.random.Generator) -> list[int]:
    """Split ``total`` into ``n_bins`` integers differing by at most one; which bins get
    the extra one is random."""
    base, extra = divmod(total, n_bins)
    counts = [base] * n_bins
    for i in rng.permutation(n_bins)[:extra]:
        counts[int(i)] += 1
    return counts
