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
MODEL_SHAPE: dict[str, object] = {
    "hidden_size": 64, "num_hidden_layers": 6, "num_attention_heads": 4, "intermediate_size": 128,
    "conv_dim": (32,) * 7,
}
"""A small wav2vec 2.0: the real convolution schedule (50 frames/s), 6 layers of 64 dims."""
UNTRAINED_NOTE = "UNTRAINED demo model: random weights, made by `crossling demo`; results mean nothing"


@dataclass(frozen=True)
class DemoConfig:
    """What ``crossling demo`` runs.

    Attributes
    ----------
    out : run directory (default ``<cache root>/runs/demo``)
    cache_root : cache root (default ``$CROSSLING_CACHE`` or ``./cache``)
    seed : one seed for the corpus, models, folds, probes, fine-tuning and listeners
    per_emotion : demo sentences per emotion, speaker and language (eSpeak NG)
    probe_head : probe head of the layer-wise analysis: ``logreg`` (default here: the demo's
        160 utterances per language are too few for the paper's MLP at lr 1e-4 to leave
        chance level within 100 epochs) or the paper's ``mlp``
    probe_epochs : probe epochs at most for ``mlp``/``linear`` (the paper's 100)
    finetune_epochs : fine-tuning epochs per stage (short: the demo shows the pipeline)
    listeners_per_group : simulated listeners per group (the paper had six)
    """

    out: Path | None = None
    cache_root: Path | None = None
    seed: int = 0
    per_emotion: int = 8
    probe_head: str = "logreg"
    probe_epochs: int = 100
    finetune_epochs: int = 2
    listeners_per_group: int = 6

    def __post_init__(self) -> None:
        if self.probe_head not in ("logreg", "mlp", "linear"):
            raise ValueError(f"probe_head must be logreg, mlp or linear, not {self.probe_head!r}")
        for name in ("per_emotion", "probe_epochs", "finetune_epochs", "listeners_per_group"):
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
    """Run every step that is not done yet; return the report's path."""
    t0 = time.perf_counter()
    root, run = config.root, config.run_dir
    ledger = Ledger(run)
    base = fingerprint_of("demo-v1", asdict(config) | {"out": str(run), "cache_root": str(root)})
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
            ledger.run(f"extract/{model}/{corpus}", base,
                       lambda model=model, corpus=corpus: steps.extract(str(root / "models" / model), corpus, root),
                       log)
    ledger.run("probes", base, lambda: steps.probes(
        tuple(DEMO_MODELS), PROBE_CORPORA, root, run / "probes", head=config.probe_head, seed=config.seed,
        max_epochs=config.probe_epochs), log)
    ft_dirs = []
    for strategy in FINETUNE_STRATEGIES:
        out = run / "finetune" / strategy.replace("+", "_")
        ft_dirs.append(out)
        ledger.run(f"finetune/{strategy}", base, lambda strategy=strategy, out=out: steps.finetune(
            str(root / "models" / "untrained-w2v2-cn"), strategy, "demo-de", "demo-de", root, out, two_stage=True, source="demo-cn",
            folds=(0,), max_epochs=config.finetune_epochs, seed=config.seed, log=log), log)
    ledger.run("finetune/table1", base, lambda: steps.table_one(ft_dirs, run / "finetune"), log)
    ledger.run("human", base, lambda: _human(config, log), log)
    ledger.run("sed", base, lambda: _sed(config, log), log)
    from study.report import build_report

    report = build_report(run)
    log(f"demo finished in {time.perf_counter() - t0:.0f} s; report: {report}")
    return report


def _meta(config: DemoConfig) -> dict:
    return {
        "title": "Cross-lingual SER demo (synthetic speech, untrained models)",
        "untrained_models": True,
        "demo": asdict(config) | {"out": str(config.run_dir), "cache_root": str(config.root)},
        "languages": {"demo-cn": "cn (Mandarin, as ESD)", "demo-de": "de (German, as PAVOQUE)",
                      "demo-en": "en (English, as IEMOCAP)", "demo-yue": "yue (Cantonese, for the Tianjin dialect)"},
        "models": {**{m: f"untrained wav2vec 2.0 ({lang})" for m, lang in DEMO_MODELS.items()},
                   SED_MODEL: "untrained WavLM + frame classifier (SpeechBrain folder)"},
        "listeners": "simulated: answers drawn from the paper's human confusion matrices (Table III) "
                     "per listener group and language; Tianjin accuracy (Table II) for Cantonese",
        "sed_listeners": "simulated: the right emotion with probability 0.8, event boundaries moved by N(0, 0.3) s",
    }


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
                            model_results=model_dir / "per_utterance.parquet")
    return list(paths.values())


def simulate_sed_answers(key: pl.DataFrame, groups: dict[str, int], seed: int = 0, accuracy: float = 0.8,
                         boundary_sd_s: float = 0.3) -> pl.DataFrame:
    """Simulated SED answers: the right label with probability ``accuracy`` (else another
    emotion), and the event's stretch with boundaries moved by N(0, ``boundary_sd_s``) s,
    clipped to the utterance."""
    rng = np.random.default_rng(seed)
    emotions = ("angry", "happy", "sad")
    rows = []
    for group, n in groups.items():
        for i in range(n):
            for stim in key.iter_rows(named=True):
                true = stim["emotion"]
                label = true if rng.random() < accuracy else str(rng.choice([e for e in emotions if e != true]))
                start = float(np.clip(stim["event_start"] + rng.normal(0, boundary_sd_s), 0, stim["duration"]))
                end = float(np.clip(stim["event_end"] + rng.normal(0, boundary_sd_s), start, stim["duration"]))
                rows.append({"listener": f"{group}-{i + 1:02d}", "group": group, "stimulus": stim["stimulus"],
                             "label": label, "start": round(start, 3), "end": round(end, 3)})
    return pl.DataFrame(rows)
