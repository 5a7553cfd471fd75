"""Fine-tuning at the seams: a model pinned by a folder named unlike its alias keeps the
alias given (best-layer lookup, cache folder, results, checkpoints), and a cache left as
unmerged shards (`featstore extract --shard 0/2`, `--shard 1/2`) is read, not recomputed."""

from __future__ import annotations

import pytest
from test_finetune_run import QUICK, _prepare

import featstore.audio
from featstore.extract import ExtractConfig, run_extraction
from featstore.models import load_model
from featstore.models.testing import save_tiny_model
from featstore.paths import features_path
from finetune.checkpoint import read_checkpoint_config
from finetune.run import FinetuneConfig, FinetuneError, run_finetune
from probes.results import best_layers_path, write_best_layers

ALIAS = "w2v2-cn"  # a registered alias: its language comes with it


@pytest.fixture(scope="module")
def pinned(tmp_path_factory):
    """Prepared corpus ``tgt`` (de); a tiny model in a folder named like the real download."""
    root = tmp_path_factory.mktemp("ident")
    _prepare(root, "tgt", "de", 2)
    folder = save_tiny_model(root / "downloads" / "chinese-wav2vec2-base", "wav2vec2", "model",
                             num_hidden_layers=3, feat_extract_norm="group")
    return root, folder


def _config(root, folder, **kw) -> FinetuneConfig:
    base = dict(model=str(folder), alias=ALIAS, language="cn", train_corpus="tgt", test_corpus="tgt", layer=2,
                strategy="lora+wg", folds=(0,), train=QUICK, cache_root=str(root), save_checkpoints=False,
                use_cache=False, device="cpu")
    return FinetuneConfig(**(base | kw))


def test_layer_best_of_a_path_pinned_model_uses_its_alias(pinned):
    root, folder = pinned
    path = best_layers_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the folder's name has a best layer too: it must not be the one used
    write_best_layers({ALIAS: {"trans": 3}, "chinese-wav2vec2-base": {"trans": 1}}, path)
    out = root / "best"
    frame = run_finetune(_config(root, folder, layer="best", out=str(out), save_checkpoints=True))
    assert frame["layer"].to_list() == [3] and frame["model"].to_list() == [ALIAS]
    assert frame["setting"].to_list() == ["trans"]  # a Mandarin model on German: the language was kept
    assert read_checkpoint_config(out / "checkpoints" / "fold0")["base"]["alias"] == ALIAS
    write_best_layers({"chinese-wav2vec2-base": {"trans": 1}}, path, merge=False)
    with pytest.raises(FinetuneError, match=ALIAS):
        run_finetune(_config(root, folder, layer="best", out=str(root / "best2")))
    path.unlink()


def test_a_base_loaded_without_the_alias_takes_the_configs(pinned):
    root, folder = pinned
    base = load_model(folder, language="cn")
    assert base.alias == "chinese-wav2vec2-base"
    frame = run_finetune(_config(root, folder, out=str(root / "given")), base=base)
    assert frame["model"].to_list() == [ALIAS]


def test_a_sharded_cache_is_read_not_recomputed(pinned, monkeypatch):
    root, folder = pinned
    state = 0  # every-layer scope reads hidden state 0, the transformer input
    for index in (0, 1):  # two ranks, never merged
        run_extraction(ExtractConfig(model=str(folder), alias=ALIAS, model_language="cn", corpus="tgt",
                                     cache_root=root, frames=True, frame_layers=(state,), dtype="float32",
                                     shard=(index, 2), piece_utts=4, progress=False, device="cpu"))
    merged = features_path(ALIAS, "tgt", root)
    shards = sorted(merged.parent.glob("tgt.shard-*-of-2.h5"))
    assert [p.name for p in shards] == ["tgt.shard-0-of-2.h5", "tgt.shard-1-of-2.h5"] and not merged.exists()
    assert not (root / "chinese-wav2vec2-base").exists()  # the cache folder is the alias's

    calls: list[str] = []
    real = featstore.audio.load_row

    def counting(row, **kwargs):
        calls.append(row["utt_id"])
        return real(row, **kwargs)

    monkeypatch.setattr(featstore.audio, "load_row", counting)
    messages: list[str] = []
    cached = run_finetune(_config(root, folder, use_cache=True, out=str(root / "sharded")), log=messages.append)
    assert any("from the frame cache" in m for m in messages), messages
    # one clip is decoded to check the cache against the model; no other audio is read
    assert len(calls) == 1, calls
    row = cached.row(0, named=True)
    assert row["cache_path"] == str(merged.parent / "tgt.shard-*-of-2.h5")
    assert row["cache_fingerprint"]

    # without the cache every clip of the folds is decoded: the count above can tell
    calls.clear()
    plain = run_finetune(_config(root, folder, use_cache=False, out=str(root / "plain")))
    assert len(calls) == 16 and plain["cache_path"].to_list() == [""]
    assert cached["ua"].to_list() == pytest.approx(plain["ua"].to_list(), abs=1e-6)

    # a missing shard is not a smaller corpus: the run says so and falls back to audio
    shards[1].unlink()
    messages.clear()
    run_finetune(_config(root, folder, use_cache=True, out=str(root / "half")), log=messages.append)
    assert any("incomplete" in m and "missing [1]" in m for m in messages), messages
