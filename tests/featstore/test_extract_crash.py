"""Crash safety: SIGKILL a real extraction subprocess, rerun it, compare with an
uninterrupted run; and a second writer of the same cache is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from extract_testkit import tiny_model, write_clips

from featstore.cache import CacheLockedError, WriterLock
from featstore.extract import ExtractConfig, run_extraction
from featstore.manifest import save_manifest
from featstore.models.testing import save_tiny_model
from featstore.paths import manifest_path

REPO = Path(__file__).resolve().parents[2]

# The child loads a real model folder and extracts; a forward pre-hook counts the clips it
# runs and (when asked) sleeps, so that the parent can kill it half-way.
SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    import torch
    torch.set_num_threads(1)
    from featstore.extract import ExtractConfig, run_extraction
    from featstore.models import load_model
    model_dir, root, out = sys.argv[1:4]
    delay = float(os.environ.get("SLOW_S", "0"))
    loaded = load_model(model_dir, language="en")
    seen = [0]
    def hook(module, args):
        seen[0] += 1
        time.sleep(delay)
    loaded.encoder.encoder.pos_conv_embed.register_forward_pre_hook(hook)  # once per batch
    cfg = ExtractConfig(model=model_dir, corpus="toy", cache_root=root, out=out, piece_utts=4, batch_size=4,
                        frames=True, progress=False)
    rep = run_extraction(cfg, model=loaded)
    print(json.dumps({"batches": seen[0], "reused": rep.pieces_reused, "total": rep.pieces_total,
                      "extracted": rep.n_extracted, "failed": sorted(rep.failed)}))
""")


def _run(script, model_dir, root, out, slow=0.0, **kw):
    env = {**os.environ, "SLOW_S": str(slow), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(script), str(model_dir), str(root), str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, **kw)


@pytest.mark.slow
def test_sigkill_then_rerun_equals_uninterrupted(tmp_path):
    root = tmp_path / "cache"
    model_dir = save_tiny_model(tmp_path / "mini", "wav2vec2", "model")
    man = write_clips(tmp_path / "wav", 40, seed=7, min_s=0.1, max_s=0.6, bad={13: "garbage"})
    save_manifest(man, manifest_path("toy", root))
    script = tmp_path / "child.py"
    script.write_text(SCRIPT)
    killed_out = tmp_path / "killed" / "toy.h5"
    parts = killed_out.with_name("toy.h5.parts")

    child = _run(script, model_dir, root, killed_out, slow=0.4)
    deadline = time.time() + 120
    while not list(parts.glob("part-*.h5")):
        assert child.poll() is None, child.communicate()
        assert time.time() < deadline, "no part file appeared"
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not killed_out.exists()
    finished = sorted(parts.glob("part-*.h5"))
    assert 1 <= len(finished) < 10
    n_finished = len(finished)

    # rerun: finishes the job, re-extracting nothing that was finished
    rerun = _run(script, model_dir, root, killed_out)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    n_reused = report["reused"]
    assert n_reused >= n_finished and report["total"] == 10
    assert report["batches"] == 10 - n_reused  # one batch of 4 clips per unfinished piece
    assert report["extracted"] == 40 - 4 * n_reused - (1 if n_reused * 4 <= 13 else 0)
    assert not parts.exists()

    full_out = tmp_path / "full" / "toy.h5"
    full = _run(script, model_dir, root, full_out)
    out, err = full.communicate(timeout=300)
    assert full.returncode == 0, err
    with h5py.File(killed_out) as a, h5py.File(full_out) as b:
        names = []
        a.visit(names.append)
        names = [n for n in names if isinstance(a[n], h5py.Dataset)]
        assert {"pooled/mean", "frames/data", "failed/utt_ids", "manifest_json"} <= set(names)
        for name in names:
            np.testing.assert_array_equal(a[name][()], b[name][()], err_msg=name)
        assert a.attrs["fingerprint"] == b.attrs["fingerprint"]
        assert list(a["failed/utt_ids"].asstr()[:]) == ["u013"]


def test_second_writer_refused_while_first_holds_the_lock(tmp_path):
    man = write_clips(tmp_path / "wav", 3)
    cfg = ExtractConfig(model="tiny", corpus="toy", cache_root=tmp_path / "c", progress=False, out=tmp_path / "c" / "toy.h5")
    with WriterLock(tmp_path / "c" / "toy.h5"):
        with pytest.raises(CacheLockedError, match="--wait"):
            run_extraction(cfg, tiny_model(), man)
    assert run_extraction(cfg, tiny_model(), man).status == "extracted"


def test_lock_is_released_when_the_holder_is_killed(tmp_path):
    target = tmp_path / "x.h5"
    code = f"from featstore.cache import WriterLock; import time\nwith WriterLock({str(target)!r}):\n print('locked', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(CacheLockedError, match=f"pid {holder.pid}"):
        with WriterLock(target):
            pass
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with WriterLock(target):
        pass


def test_wait_blocks_until_the_holder_is_done(tmp_path):
    target = tmp_path / "y.h5"
    code = (f"from featstore.cache import WriterLock; import time\nwith WriterLock({str(target)!r}):\n"
            " print('locked', flush=True); time.sleep(1.0)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    assert holder.stdout.readline().strip() == "locked"
    t0 = time.perf_counter()
    with WriterLock(target, wait=True):
        waited = time.perf_counter() - t0
        assert holder.poll() is not None or waited > 0.3
    holder.wait()
    assert waited > 0.3
