"""``--layer best-smallest``: the smallest layer of the probes' best-layer set."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from finetune.run import FinetuneConfig, _layer
from probes.results import best_layers_path, best_sets_path, write_best_layers, write_best_sets


def test_best_smallest_reads_the_best_layer_set(tmp_path):
    write_best_layers({"m": {"mono": 9}}, best_layers_path(tmp_path))
    write_best_sets({"m": {"mono": [7, 8, 9]}}, best_sets_path(tmp_path))
    base = SimpleNamespace(n_hidden_states=13)
    smallest = FinetuneConfig(model="m", train_corpus="a", test_corpus="a", layer="best-smallest",
                              cache_root=str(tmp_path))
    best = FinetuneConfig(model="m", train_corpus="a", test_corpus="a", layer="best", cache_root=str(tmp_path),
                          best_layer_by="setting")
    assert _layer(smallest, "m", "mono", base) == 7
    assert _layer(best, "m", "mono", base) == 9
    with pytest.raises(ValueError, match="best-smallest"):
        FinetuneConfig(model="m", train_corpus="a", test_corpus="a", layer="smallest")
