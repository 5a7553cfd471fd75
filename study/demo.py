"""``crossling demo``: the whole study, end to end, on the embedded demo corpus.

No data and no weights are needed. The demo makes eSpeak NG speech in four languages,
builds small UNTRAINED models (random weights, saved in the real Hugging Face and
SpeechBrain formats and labelled as untrained everywhere), extracts them into the cache,
runs the layer-wise analysis in all three settings, one short fine-tuning run per adapter
family with two-stage training, diarization of concatenated demo utterances, simulated
listening tests read back through the real ingest paths, and writes the HTML report.

The demo's languages stand in for the paper's: Mandarin (``cn``, as ESD), German (``de``,
as PAVOQUE), English (``en``, as IEMOCAP) and Cantonese (``yue``, standing in for the
Tianjin dialect). Each finished step is recorded, so a rerun reuses the cache.

The models stay untrained, yet the trainable steps learn: the synthetic emotions differ in
pitch level, pitch range and voice quality enough for random wav2vec 2.0 features, and the
fine-tuning runs take enough optimiser steps to leave chance level. How far each step is
above chance is written to ``study.json`` (``margins``, see :func:`demo_margins`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from featstore.paths import cache_root as default_cache_root
from study import steps
from study.ledger import Ledger, fingerprint_of

DEMO_LANGUAGES: tuple[str, ...] = ("cn", "de", "en", "yue")
DEMO_MODELS: dict[str, str] = {"untrained-w2v2-cn": "cn", "untrained-w2v2-de": "de", "untrained-w2v2-en": "en"}
"""Untrained stand-ins for W2V2-CN/-DE/-EN: alias -> language."""
SED_MODEL = "untrained-wavlm-emo"
"""Untrained stand-in for the SpeechBrain emotion-diarization WavLM."""
PROBE_CORPORA: tuple[str, ...] = ("demo-cn", "demo-de", "demo-en")
FINETUNE_STRATEGIES: tuple[str, ...] = ("lora", "ba", "wg", "lora+ba+wg")
FINETUNE_MODEL = "untrained-w2v2-cn"
"""The model the demo fine-tunes (two-stage: demo-cn, then demo-de)."""
FINETUNE_CORPORA: tuple[str, ...] = ("demo-cn", "demo-de")
MODEL_SHAPE: dict[str, object] = {
    "hidden_size": 64, "num_hidden_layers": 6, "num_attention_heads": 4, "intermediate_size": 128,
    "conv_dim": (32,) * 7,
}
"""A small wav2vec 2.0: the real convolution schedule (50 frames/s), 6 layers of 64 dims."""
MIN_SELECTION_S = 0.1
"""Shortest simulated SED selection, seconds."""
SED_LISTENERS_NOTE = "simulated: the right emotion with probability 0.8, event boundaries moved by N(0, 0.3) s"
"""How the demo's diarization listeners are simulated (in study.json and every SED listener file)."""
UNTRAINED_NOTE = "UNTRAINED demo model: random weights, made by `crossling demo`; results mean nothing"


@dataclass(frozen=True)
class DemoConfig:
    """What ``crossling demo`` runs.

    Attributes
    ----------
    out : run directory (default ``<cache root>/runs/demo``)
    cache_root : cache root (default ``$CROSSLING_CACHE`` or ``./cache``)
    seed : one seed for the corpus, models, folds, probes, fine-tuning and listeners
    per_emotion : demo sentences per emotion, speaker and language (eSpeak NG; 12: 240
        utterances per language, enough for the probes to clear 60 % UA, chance 25 %)
    probe_head : probe head of the layer-wise analysis: ``logreg`` (default here: the demo's
        few utterances per language are too few for the paper's MLP at lr 1e-4 to leave
        chance level within 100 epochs) or the paper's ``mlp``
    probe_epochs : probe epochs at most for ``mlp``/``linear`` (the paper's 100)
    finetune_epochs : fine-tuning epochs per stage at most (early stopping on the validation
        loss ends most stages sooner)
    finetune_lr : AdamW learning rate of the demo's fine-tuning. With the paper's 1e-4, 2
        epochs of batch 16 are about 24 optimiser steps: the loss stayed at ln 4 (1.39),
        the head gave every clip nearly the same output and predicted one class (exactly
        25 % UA). The pooled states of the small random encoder differ little from clip to
        clip next to their common offset, so the head needs a larger step size and more
        steps: 3e-3, batch 8, up to 20 epochs per stage with early stopping
    finetune_batch_size : clips per optimiser step
    finetune_patience : epochs without a lower validation loss before a stage stops
    finetune_scope : adapters on the target layer only (``target-layer``, fast: the frozen
        layers below are read from the frame cache) or on every layer (the paper's)
    listeners_per_group : simulated listeners per group (the paper had six)
    """

    out: Path | None = None
    cache_root: Path | None = None
    seed: int = 0
    per_emotion: int = 12
    probe_head: str = "logreg"
    probe_epochs: int = 100
    finetune_epochs: int = 20
    finetune_lr: float = 3e-3
    finetune_batch_size: int = 8
    finetune_patience: int = 5
    finetune_scope: str = "target-layer"
    listeners_per_group: int = 6

    def __post_init__(self) -> None:
        if self.probe_head not in ("logreg", "mlp", "linear"):
            raise ValueError(f"probe_head must be logreg, mlp or linear, not {self.probe_head!r}")
        if self.finetune_scope not in ("target-layer", "every-layer"):
            raise ValueError(f"finetune_scope must be target-layer or every-layer, not {self.finetune_scope!r}")
        if self.finetune_lr <= 0:
            raise ValueError(f"finetune_lr must be > 0, got {self.finetune_lr}")
        for name in ("per_emotion", "probe_epochs", "finetune_epochs", "finetune_batch_size", "finetune_patience",
                     "listeners_per_group"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")

    @property
    def root(self) -> Path:
        """The cache root in use."""
        return default_cache_root(self.cache_root)

    @property
    def run_dir(self) -> Path:
        """The run directory in use."""
        return Path(self.out) if self.out else self.root / "runs" / "demo"


def noise_model() -> object:
    """The simulated listeners: the paper's human confusion matrices (Table III) per group
    and language, its Table II accuracy on Tianjin speech for the Cantonese stand-in."""
    from probes.human import NoiseModel, paper_noise_model
    from probes.human.simulate import PAPER_TJ_ACCURACY

    paper = paper_noise_model(default=0.7)
    cells = dict(paper.cells) | {(group, "yue"): acc for group, acc in PAPER_TJ_ACCURACY.items()}
    return NoiseModel(default=paper.default, cells=cells)


def run_demo(config: DemoConfig = DemoConfig(), log: Callable[[str], None] = print) -> Path:
    """Run every step that is not done yet; return the report's path.

    Torch runs on one thread meanwhile (restored afterwards): the demo's models are so small
    that a second thread gains little, and on a busy machine the threads' spin-waiting made
    feature extraction about ten times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run_demo(config, log)
    finally:
        torch.set_num_threads(threads)


def _run_demo(config: DemoConfig, log: Callable[[str], None]) -> Path:
    t0 = time.perf_counter()
    root, run = config.root, config.run_dir
    ledger = Ledger(run)
    base = fingerprint_of("demo-v2", asdict(config) | {"out": str(run), "cache_root": str(root)})
    steps.write_study_meta(run, _meta(config))
    corpus_dir = root / "demo"  # where `featstore synth` writes by default

    ledger.run("synth", base, lambda: _synth(config, corpus_dir), log)
    for lang in DEMO_LANGUAGES:
        name = f"demo-{lang}"
        ledger.run(f"prepare/{name}", base, lambda lang=lang, name=name: steps.prepare(
            "esd", corpus_dir / lang, name, root, {"language": lang}), log)
        ledger.run(f"splits/{name}", base, lambda name=name: steps.splits(name, root, config.seed), log)
    ledger.run("models", base, lambda: _models(config), log)
    for model in DEMO_MODELS:
        for corpus in PROBE_CORPORA:
            # the fine-tuned model's corpora keep float32 frames: fine-tuning reads its
            # frozen input state from the cache instead of running the front end per epoch
            frames = model == FINETUNE_MODEL and corpus in FINETUNE_CORPORA
            ledger.run(f"extract/{model}/{corpus}", base,
                       lambda model=model, corpus=corpus, frames=frames: steps.extract(
                           str(root / "models" / model), corpus, root, frames=frames,
                           dtype="float32" if frames else "float16"), log)
    ledger.run("probes", base, lambda: steps.probes(
        tuple(DEMO_MODELS), PROBE_CORPORA, root, run / "probes", head=config.probe_head, seed=config.seed,
        max_epochs=config.probe_epochs), log)
    ft_dirs = []
    for strategy in FINETUNE_STRATEGIES:
        out = run / "finetune" / strategy.replace("+", "_")
        ft_dirs.append(out)
        ledger.run(f"finetune/{strategy}", base, lambda strategy=strategy, out=out: _finetune(config, strategy, out, log),
                   log)
    ledger.run("finetune/table1", base, lambda: steps.table_one(ft_dirs, run / "finetune", demo=True), log)
    margins = demo_margins(run)
    steps.write_study_meta(run, _meta(config) | {"margins": margins})
    log(f"margins over chance ({margins['chance_ua_pct']:.0f} % UA): best monolingual probe layer "
        f"{margins['best_mono_probe_ua_pct']:.1f} % UA at least, fine-tuning {margins['min_finetune_ua_pct']:.1f} % "
        "UA at least")
    ledger.run("human", base, lambda: _human(config, log), log)
    ledger.run("sed", base, lambda: _sed(config, log), log)
    from study.report import build_report

    report = build_report(run)
    log(f"demo finished in {time.perf_counter() - t0:.0f} s; report: {report}")
    return report


def demo_margins(run: Path) -> dict[str, object]:
    """How far the demo's trainable steps are above chance, from its result files.

    ``best_mono_probe_ua_pct``: the lowest, over the demo models, of the UA (%) of the
    model's best monolingual probe layer (UA averaged over folds, as in Figure 1);
    ``min_finetune_ua_pct``: the lowest UA (%) of the fine-tuning runs (mean over folds);
    both also per model / strategy, and ``chance_ua_pct`` (100 / number of emotions).
    """
    from featstore.manifest import CANONICAL_EMOTIONS
    from probes.results import best_layer_table

    probes = pl.read_parquet(run / "probes" / "results.parquet")
    best = best_layer_table(probes.filter(pl.col("setting") == "mono"), min_layer=0)
    by_model = {r["model"]: {"layer": int(r["layer"]), "ua_pct": round(100 * float(r["ua_mean"]), 2)}
                for r in best.iter_rows(named=True)}
    by_strategy = {}
    for strategy in FINETUNE_STRATEGIES:
        frame = pl.read_parquet(run / "finetune" / strategy.replace("+", "_") / "results.parquet")
        by_strategy[strategy] = round(100 * float(frame["ua"].mean()), 2)
    return {
        "chance_ua_pct": round(100 / len(CANONICAL_EMOTIONS), 2),
        "best_mono_probe_ua_pct": min(v["ua_pct"] for v in by_model.values()),
        "best_mono_probe_by_model": by_model,
        "min_finetune_ua_pct": min(by_strategy.values()),
        "finetune_ua_pct_by_strategy": by_strategy,
    }


def _meta(config: DemoConfig) -> dict:
    return {
        "title": "Cross-lingual SER demo (synthetic speech, untrained models)",
        "untrained_models": True,
        "how_models_were_made": "random weights (seeded), no pre-training: tiny wav2vec 2.0 models, 6 layers x "
                                "64 dims, saved in the Hugging Face pre-training format; the emotions of the "
                                "synthetic speech differ in pitch level and range and in voice quality (spectral "
                                "tilt) enough for random features to carry them",
        "demo": asdict(config) | {"out": str(config.run_dir), "cache_root": str(config.root)},
        "languages": {"demo-cn": "cn (Mandarin, as ESD)", "demo-de": "de (German, as PAVOQUE)",
                      "demo-en": "en (English, as IEMOCAP)", "demo-yue": "yue (Cantonese, for the Tianjin dialect)"},
        "models": {**{m: f"wav2vec 2.0, {MODEL_SHAPE.get('num_hidden_layers', '?')} layers x "
                         f"{MODEL_SHAPE.get('hidden_size', '?')} dims, random weights (seed {config.seed + i}), "
                         f"NO pre-training; language tag {lang}; Hugging Face pre-training format"
                      for i, (m, lang) in enumerate(DEMO_MODELS.items())},
                   SED_MODEL: f"tiny WavLM + frame classifier, random weights (seed {config.seed}), no training; "
                              "SpeechBrain folder"},
        "listeners": "simulated: answers drawn from the paper's human confusion matrices (Table III) "
                     "per listener group and language; Tianjin accuracy (Table II) for Cantonese",
        "sed_listeners": SED_LISTENERS_NOTE,
    }


def _finetune(config: DemoConfig, strategy: str, out: Path, log: Callable[[str], None] | None = None) -> list[Path]:
    """One two-stage run (stage 1 on demo-cn, stage 2 and test on demo-de), fold 0;
    progress lines (fold, epoch, loss, validation UA, ETA) go to ``log``."""
    from finetune.run import FinetuneConfig, run_finetune
    from finetune.train import TrainConfig

    train = TrainConfig(lr=config.finetune_lr, batch_size=config.finetune_batch_size,
                        max_epochs=config.finetune_epochs, patience=config.finetune_patience, seed=config.seed)
    ft_config = FinetuneConfig(
        model=str(config.root / "models" / FINETUNE_MODEL), train_corpus="demo-de", test_corpus="demo-de",
        strategy=strategy, scope=config.finetune_scope, two_stage=True, source_corpus="demo-cn", folds=(0,), train=train,
        cache_root=str(config.root), out=str(out))
    run_finetune(ft_config, on_epoch=steps.epoch_progress(log, ft_config))
    return [out / "results.parquet"]


def _synth(config: DemoConfig, out: Path) -> list[Path]:
    from featstore.synth import SynthConfig, synthesize_demo

    folders = synthesize_demo(SynthConfig(out=out, seed=config.seed, per_emotion=config.per_emotion,
                                          languages=DEMO_LANGUAGES), progress=True)
    return list(folders.values())


def _models(config: DemoConfig) -> list[Path]:
    from featstore.models.testing import save_tiny_model

    models = config.root / "models"
    paths = []
    for i, (alias, lang) in enumerate(DEMO_MODELS.items()):
        paths.append(save_tiny_model(models / alias, "wav2vec2", "pretraining", feat_extract_norm="group",
                                     seed=config.seed + i, language=lang, untrained=True, note=UNTRAINED_NOTE,
                                     **MODEL_SHAPE))
    paths.append(save_tiny_model(models / SED_MODEL, "wavlm", "speechbrain", seed=config.seed, language="en",
                                 untrained=True, note=UNTRAINED_NOTE))
    return paths


def _human(config: DemoConfig, log: Callable[[str], None] = print) -> list[Path]:
    from probes.human import BuildConfig, build_listening_test, read_key, select_stimuli, simulate_answers

    run, root = config.run_dir, config.root
    build_dir = run / "listening"
    corpora = tuple(f"demo-{lang}" for lang in DEMO_LANGUAGES)
    build = BuildConfig(corpora=corpora, per_emotion=min(12, config.per_emotion), seed=config.seed,
                        name="ser-test", improvised_only=())
    log("listening test: choosing stimuli and writing the webMUSHRA test")
    built = build_listening_test(select_stimuli(build, root), build_dir, build)
    key = read_key(built.key_path)
    answers_dir = build_dir / "answers"
    if answers_dir.exists():  # a rerun of this step starts the simulated answers afresh
        for old in answers_dir.rglob("lss.csv"):
            old.unlink()
    log(f"listening test: simulating {config.listeners_per_group} listeners per group (cn, de)")
    simulate_answers(key, {"cn": config.listeners_per_group, "de": config.listeners_per_group}, noise_model(),
                     seed=config.seed, out_dir=answers_dir, test_id="ser-test")
    predictions = steps.best_layer_predictions(run / "probes")
    log("listening test: comparing listeners with the models (Tables II, III, t-tests)")
    return steps.human_compare(sorted(answers_dir.rglob("lss.csv")), built.key_path, predictions, run / "human",
                               group_languages={"cn": "cn", "de": "de"}, model_languages=DEMO_MODELS,
                               simulated=_meta(config)["listeners"])


def _sed(config: DemoConfig, log: Callable[[str], None] = print) -> list[Path]:
    from featstore.audio import load_row
    from featstore.manifest import load_manifest
    from featstore.paths import manifest_path
    from probes.sed import (
        ConcatConfig,
        ModelRunConfig,
        SedTestConfig,
        build_listeners,
        concatenate_for_sed,
        run_model,
        score_listeners,
    )

    run, root = config.run_dir, config.root
    source = load_manifest(manifest_path("demo-en", root))
    zed_dir = root / "demo-zed"
    # one neutral + emotional + neutral utterance per emotional demo utterance (ZED's recipe)
    concatenate_for_sed(source, zed_dir, load_row, ConcatConfig(seed=config.seed))
    steps.prepare("zed", zed_dir, "demo-zed", root)
    model_dir = run / "sed" / "model"
    from featstore.console import track_items

    run_model(ModelRunConfig(model=str(root / "models" / SED_MODEL), corpus="demo-zed"), root=root, out_dir=model_dir,
              progress=lambda items: track_items(items, "diarizing demo-zed", "utts", tty=False, write=log))
    built = build_listeners(SedTestConfig(n_per_emotion=min(8, config.per_emotion), seed=config.seed), corpus="demo-zed",
                            root=root, out_dir=run / "sed" / "listening")
    log("diarization listening test: simulating answers and scoring EDER")
    answers = simulate_sed_answers(pl.read_csv(built["key"]), {"cn": config.listeners_per_group,
                                                               "de": config.listeners_per_group}, seed=config.seed)
    answers_path = run / "sed" / "listening" / "answers.csv"
    answers.write_csv(answers_path)
    paths = score_listeners(answers_path, built["key"], out_dir=run / "sed",
                            model_results=model_dir / "per_utterance.parquet", simulated=SED_LISTENERS_NOTE)
    return list(paths.values())


def simulate_sed_answers(key: pl.DataFrame, groups: dict[str, int], seed: int = 0, accuracy: float = 0.8,
                         boundary_sd_s: float = 0.3) -> pl.DataFrame:
    """Simulated SED answers: the right label with probability ``accuracy`` (else another
    emotion), and the event's stretch with boundaries moved by N(0, ``boundary_sd_s``) s,
    clipped to the utterance, at least ``MIN_SELECTION_S`` long."""
    rng = np.random.default_rng(seed)
    emotions = ("angry", "happy", "sad")
    rows = []
    for group, n in groups.items():
        for i in range(n):
            for stim in key.iter_rows(named=True):
                true = stim["emotion"]
                label = true if rng.random() < accuracy else str(rng.choice([e for e in emotions if e != true]))
                # a selection lasts at least MIN_SELECTION_S (a listener's drag is never empty)
                start = float(np.clip(stim["event_start"] + rng.normal(0, boundary_sd_s), 0,
                                      max(stim["duration"] - MIN_SELECTION_S, 0.0)))
                end = float(np.clip(stim["event_end"] + rng.normal(0, boundary_sd_s), start + MIN_SELECTION_S,
                                    stim["duration"]))
                rows.append({"listener": f"{group}-{i + 1:02d}", "group": group, "stimulus": stim["stimulus"],
                             "label": label, "start": round(start, 3), "end": round(end, 3)})
    return pl.DataFrame(rows)
