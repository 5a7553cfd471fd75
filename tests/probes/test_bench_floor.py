"""`probes bench`'s weighted-sum ratio and FLOP floor: the FLOP count against torch's own
counter on a real training epoch, and the figures of a tiny bench."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from torch.utils.flop_counter import FlopCounterMode

from probes._stacked import HeadTask, train_stacked
from probes.bench import BenchConfig, flop_floor, head_flops, run_bench
from probes.config import ProbeConfig
from probes.heads import HEADS


@pytest.mark.parametrize("head", ["mlp", "linear"])
def test_head_flops_equal_torchs_count_of_a_training_epoch(head):
    rng = np.random.default_rng(0)
    dim, n, n_train, n_valid, batch = 16, 120, 80, 24, 32  # a short last minibatch too
    x = rng.standard_normal((1, n, dim)).astype(np.float32)
    y = np.arange(n) % 4
    task = HeadTask(slot=0, layer=0, fold=0, train_rows=np.arange(n_train), valid_rows=np.arange(n_train, n_train + n_valid))
    config = ProbeConfig(head=head, max_epochs=1, batch_size=batch)
    with FlopCounterMode(display=False) as counter:
        train_stacked(x, y, [task], config)
    want = head_flops(HEADS[head].widths(dim, 4), n_train, n_valid, batch, epochs=1)
    assert counter.get_total_flops() == want["forward"] + want["backward"] + want["valid"]
    widths = HEADS[head].widths(dim, 4)
    params = sum(i * o + o for i, o in zip(widths[:-1], widths[1:], strict=True))
    assert want["optimizer_elements"] == 3 * params  # ceil(80 / 32) = 3 steps
    assert head_flops(HEADS[head].widths(dim, 4), n_train, n_valid, batch, epochs=7)["forward"] == 7 * want["forward"]


def test_flop_floor_counts_each_head_once_with_its_own_epochs():
    rows = [{"model": "m", "train_corpus": "c", "test_corpus": t, "layer": layer, "fold": 0, "epochs": 3 + layer,
             "n_train": 64, "n_valid": 16} for layer in range(3) for t in ("c", "d")]
    frame = pl.DataFrame(rows)
    floor = flop_floor(frame, ProbeConfig(batch_size=32), dim=8, grid_s=1.0, grid_cpu_s=2.0, all_cores=False)
    assert floor["heads"] == 3 and floor["head_epochs"] == 3 + 4 + 5
    widths = HEADS["mlp"].widths(8, 4)
    gflop = sum(sum(v for k, v in head_flops(widths, 64, 16, 32, e).items() if k != "optimizer_elements")
                for e in (3, 4, 5)) / 1e9
    assert floor["gflop"] == pytest.approx(gflop)
    assert floor["floor_cpu_s"] == pytest.approx(sum(floor["floor_cpu_s_by_part"].values()))
    assert floor["floor_s"] == pytest.approx(floor["floor_cpu_s"] / floor["cores"])
    assert floor["grid_over_floor"] == pytest.approx(1.0 / floor["floor_s"])
    assert floor["grid_cpu_over_floor_cpu"] == pytest.approx(2.0 / floor["floor_cpu_s"])
    assert all(v > 0 for k, v in floor["throughput"].items() if k not in ("stack", "widths"))


@pytest.mark.slow
def test_tiny_bench_reports_the_weighted_ratio_and_the_floor(tmp_path):
    report = run_bench(BenchConfig(n_utts=48, n_layers=2, dim=8, n_folds=2, quick=True, n_jobs=1, workdir=tmp_path))
    w, f = report["weighted"], report["flop_floor"]
    assert w["probes"] == 2 * 3 * 2  # models x training corpora x folds
    assert w["over_grid"] == pytest.approx(w["seconds"] / report["a_stacked_s"])
    assert w["target_over_grid_le_1"] == (w["over_grid"] <= 1.0)
    assert f["heads"] == report["heads_trained"] and f["grid_s"] == report["a_stacked_s"]
    assert f["target_le_2"] == (f["grid_over_floor"] <= 2.0) and f["grid_cpu_s"] > 0
    assert (tmp_path / "runs" / "w" / "layer_weights.csv").exists()
    assert not (tmp_path / "runs" / "a" / "weighted_results.parquet").exists()  # (a) is the per-layer grid alone


def test_the_floor_is_the_best_of_a_throughput_measured_before_and_after_the_grid():
    from probes.bench import floor_throughput, usual_stack

    assert usual_stack([65], 16) == 13 and usual_stack([3, 3], 16) == 3 and usual_stack([16, 17], 16) == 16
    assert usual_stack([17], 16) == 9
    rows = [{"model": "m", "train_corpus": "c", "test_corpus": "c", "layer": layer, "fold": 0, "epochs": 4,
             "n_train": 64, "n_valid": 16} for layer in range(3)]
    probe = ProbeConfig(batch_size=32)
    rate = floor_throughput(HEADS["mlp"].widths(8, 4), 3, probe, 16)
    assert (rate["stack"], rate["n_valid"], rate["widths"]) == (3, 16, [8, 128, 16, 4])

    def scaled(factor):
        return {**rate, **{k: v / factor for k, v in rate.items() if k.endswith("_flop_per_s")},
                "optimizer_s_per_element": rate["optimizer_s_per_element"] * factor}

    slow = flop_floor(pl.DataFrame(rows), probe, dim=8, grid_s=1.0, before=scaled(4), all_cores=False)  # 4x slower before
    first, second = slow["floor_cpu_s_each_measurement"]
    assert slow["before_used"] and first > 2 * second and slow["floor_cpu_s"] == pytest.approx(second)
    fast = flop_floor(pl.DataFrame(rows), probe, dim=8, grid_s=1.0, before=scaled(0.25), all_cores=False)  # 4x faster before
    first, second = fast["floor_cpu_s_each_measurement"]
    assert first < second / 2 and fast["floor_cpu_s"] == pytest.approx(first)  # the machine's best counts
    other = flop_floor(pl.DataFrame(rows), probe, dim=8, grid_s=1.0, before={**scaled(0.25), "n_valid": 99},
                       all_cores=False)
    assert not other["before_used"] and len(other["floor_cpu_s_each_measurement"]) == 1


def test_throughput_on_every_core_at_once_is_the_mean_of_each_cores():
    from probes.bench import floor_throughput_all_cores

    rate = floor_throughput_all_cores(HEADS["mlp"].widths(8, 4), 3, ProbeConfig(batch_size=32), 16, n_cores=2)
    assert rate["cores_measured"] == 2 and len(rate["per_core"]) == 2
    for key in ("forward_flop_per_s", "backward_flop_per_s", "valid_flop_per_s", "optimizer_s_per_element"):
        assert rate[key] == pytest.approx(sum(r[key] for r in rate["per_core"]) / 2) and rate[key] > 0
    assert (rate["stack"], rate["n_valid"], rate["widths"]) == (3, 16, [8, 128, 16, 4])
