"""Progress of long steps: plain whole lines at a steady rate when the output is not a
terminal (never a bar cut at the log's width), fine-tuning epochs with their numbers."""

from __future__ import annotations

from featstore.console import EpochProgress, StepProgress, track_items
from featstore.extract._progress import ExtractProgress


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _progress(lines: list[str], total: int | None = 160, every_s: float = 10.0) -> tuple[StepProgress, Clock]:
    bar = StepProgress("extracting m / demo-cn", total, "utts", tty=False, write=lines.append, every_s=every_s)
    clock = Clock()
    bar._time = clock  # a fake clock: the rate is tested, not the machine's speed
    bar._t0 = bar._last = 0.0
    return bar, clock


def test_plain_lines_every_tenth_and_at_the_end_with_labelled_eta():
    lines: list[str] = []
    bar, clock = _progress(lines)
    with bar:
        for _ in range(160):
            clock.t += 0.01
            bar.advance(1, "0.07 h audio")
    assert len(lines) == 10  # 10 %, 20 % ... 90 %, and the end
    assert lines[0].startswith("extracting m / demo-cn: 16/160 utts (10 %), 0:00 elapsed, ETA 0:")
    assert lines[-1] == "extracting m / demo-cn: 160/160 utts (100 %), 0:02 elapsed, 0.07 h audio"
    assert all("…" not in line and "ETA" in line for line in lines[:-1])


def test_plain_lines_at_a_steady_rate_when_the_step_is_slow():
    lines: list[str] = []
    bar, clock = _progress(lines, total=10_000, every_s=10.0)
    with bar:
        for _ in range(100):  # 1 % in 100 s: a line every 10 s, though no tenth is reached
            clock.t += 1.0
            bar.advance(1)
    assert len(lines) == 11 and "100/10000 utts (1 %), 1:40 elapsed" in lines[-1]
    assert "ETA 2:45:00" in lines[-1]  # 9900 left at 1 s each


def test_unknown_total_and_disabled():
    lines: list[str] = []
    bar, clock = _progress(lines, total=None, every_s=5.0)
    with bar:
        for _ in range(12):
            clock.t += 1.0
            bar.advance()
    assert lines == ["extracting m / demo-cn: 5 utts, 0:05 elapsed", "extracting m / demo-cn: 10 utts, 0:10 elapsed",
                     "extracting m / demo-cn: 12 utts, 0:12 elapsed"]
    quiet: list[str] = []
    with StepProgress("x", 3, enabled=False, tty=False, write=quiet.append) as off:
        off.advance(3)
    assert quiet == []


def test_terminal_gets_a_bar_not_lines():
    lines: list[str] = []
    with StepProgress("x", 3, "utts", tty=True, write=lines.append) as bar:
        bar.advance(3)
        assert bar._bar is not None
    assert lines == []


def test_extraction_progress_in_a_log_is_whole_lines(capsys):
    with ExtractProgress(160, 0, enabled=True, label="untrained-w2v2-cn / demo-de") as bar:
        for _ in range(16):
            bar.advance(10, 30.0)
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("extracting untrained-w2v2-cn / demo-de: 160/160 utts (100 %)")
    assert "0.13 h audio" in err[-1] and "x real time" in err[-1]
    assert not [line for line in err if "━" in line or "…" in line]


def test_track_items_yields_every_item_and_reports():
    lines: list[str] = []
    assert list(track_items(range(20), "diarizing demo-zed", "utts", tty=False, write=lines.append)) == list(range(20))
    assert lines[-1].startswith("diarizing demo-zed: 20/20 utts (100 %)")


def test_epoch_progress_names_fold_epoch_loss_validation_and_eta():
    lines: list[str] = []
    progress = EpochProgress(lines.append, n_folds=2, max_epochs=4, n_stages=2)
    clock = Clock()
    progress._time, progress._t0, progress._last = clock, 0.0, 0.0
    for fold in (0, 1):
        for stage in ("stage1", "stage2"):
            for epoch in range(1, 5):
                clock.t += 3.0
                progress({"fold": fold, "stage": stage, "epoch": epoch, "train_loss": 1.3862, "valid_loss": 1.25,
                          "valid_ua": 0.4125} if fold else
                         {"fold": fold, "stage": stage, "epoch": epoch, "train_loss": 1.3862, "valid_loss": 1.25,
                          "valid_acc": 0.5})
    assert len(lines) == 16
    assert lines[0] == ("fine-tuning fold 0 (1/2) stage1 epoch 1/4, train loss 1.386, valid loss 1.250, "
                        "valid accuracy 50.0 %, 3.0 s/epoch, 0:03 elapsed, ETA at most 0:45")
    assert "fold 1 (2/2) stage2 epoch 4/4" in lines[-1] and "valid UA 41.2 %" in lines[-1]
    assert lines[-1].endswith("ETA at most 0:00")


def test_epoch_progress_throttles_but_keeps_the_last_epoch():
    lines: list[str] = []
    progress = EpochProgress(lines.append, n_folds=1, max_epochs=100, every_s=5.0)
    clock = Clock()
    progress._time, progress._t0, progress._last = clock, 0.0, 0.0
    for epoch in range(1, 101):
        clock.t += 0.5
        progress({"fold": 0, "stage": "train", "epoch": epoch, "valid_acc": 0.3})
    assert len(lines) == 11 and "epoch 100/100" in lines[-1]
