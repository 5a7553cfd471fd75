"""``run_finetune``: the whole fine-tuning experiment of one condition over its folds.

For each fold: a fresh copy of the base encoder gets the adapters, trains on the training
corpus (after the source corpus, for two-stage runs) with early stopping on its validation
part, is tested on the test part of the test corpus, and is saved as a checkpoint. Frozen
inputs are read from featstore's frame cache when one holds them in float32 and they
match what the model computes; otherwise they are computed from the audio.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from featstore.cache import cache_location
from featstore.configs import DEVICE_RULE
from featstore.errors import CrosslingError
from featstore.manifest import CANONICAL_EMOTIONS
from finetune.checkpoint import base_record, save_checkpoint
from finetune.data import ClipSet, labels_to_indices
from finetune.model import SCOPES, PeftModelConfig, SERModel
from finetune.results import LOG_SCHEMA, PREDICTION_SCHEMA_FT, results_frame, write_finetune_run
from finetune.train import SCHEDULES, FitResult, TrainConfig, evaluate, fit, fit_two_stage
from finetune.tuners import BASettings, LoraSettings, WGSettings, canonical_strategy, count_parameters
from probes.results import LAYER_RULES

if TYPE_CHECKING:  # pragma: no cover
    from featstore.cache import FeatureCache
    from featstore.models import LoadedModel

Log = Callable[[str], None]


class FinetuneError(CrosslingError, ValueError):
    """A fine-tuning request that cannot run (missing corpus, folds, layer ...)."""


PROTOCOLS: tuple[str, ...] = ("text", "authors")
LAYER_MEANINGS: tuple[str, ...] = ("hidden-state", "authors")
BEST_LAYER_BY: tuple[str, ...] = ("setting", "target")
PROTOCOL_DEFAULTS: dict[str, dict[str, object]] = {
    "text": {"valid_corpus": "train", "two_stage_schedule": "converge", "layer_means": "hidden-state",
             "train_mode_regularisation": False, "best_layer_by": "setting",
             "batch_size": 16, "equal_loss_resets_patience": False},
    "authors": {"valid_corpus": "test", "two_stage_schedule": "authors", "layer_means": "authors",
                "train_mode_regularisation": True, "best_layer_by": "target",
                "batch_size": 1, "equal_loss_resets_patience": True},
}
"""What ``--protocol`` fills in for each option left unset: ``text`` is the paper's text
(and this toolkit's behaviour), ``authors`` what the authors' published code does
(``docs/fidelity.md``, points 1-7). An explicit value always wins."""
PROTOCOL_FIELDS: tuple[str, ...] = ("valid_corpus", "two_stage_schedule", "layer_means",
                                    "train_mode_regularisation", "best_layer_by")


@dataclass(frozen=True)
class FinetuneConfig:
    """One fine-tuning condition (defaults: the paper's PEFT runs)."""

    model: str = field(metadata={"help": "model alias or folder"})
    train_corpus: str = field(metadata={"help": "corpus trained on (stage 2 of a two-stage run)"})
    test_corpus: str = field(metadata={"help": "corpus tested on"})
    layer: int | str = field(default="best", metadata={
        "help": "k >= 1, 'best' from the probes, or 'best-smallest' (smallest layer of the best-layer set)"})
    strategy: str = field(default="lora+ba+wg", metadata={"help": "adapter methods joined by '+'"})
    scope: str = field(default="every-layer", metadata={"help": "every-layer or target-layer"})
    head: str = field(default="mlp", metadata={"help": "mlp or linear"})
    two_stage: bool = field(default=False, metadata={"help": "train on source_corpus first"})
    source_corpus: str | None = field(default=None, metadata={"help": "stage-1 corpus of a two-stage run"})
    protocol: str = field(default="text", metadata={
        "help": "defaults of the six protocol options: text (the paper's text) or authors (the authors' code); "
                "an option given explicitly wins", "choices": PROTOCOLS})
    valid_corpus: str | None = field(default=None, metadata={
        "help": "validation corpus (early stopping, kept epoch): train (each stage's own training corpus), test "
                "(the test corpus, in every stage) or a corpus name; unset: the protocol's (text train, "
                "authors test)"})
    two_stage_schedule: str | None = field(default=None, metadata={
        "help": "converge (stage 2 after stage 1 converges, from its best weights, up to max_epochs more) or "
                "authors (switch at early stop or epoch max_epochs // 2, from the last weights, kept epoch "
                "from either stage, max_epochs in all); unset: the protocol's (text converge, authors authors)",
        "choices": SCHEDULES})
    layer_means: str | None = field(default=None, metadata={
        "help": "what layer k means: hidden-state (keep k layers, pool hidden state k) or authors (keep k + 1 "
                "layers, pool hidden state k + 1); unset: the protocol's (text hidden-state, authors authors)",
        "choices": LAYER_MEANINGS})
    train_mode_regularisation: bool | None = field(default=None, metadata={
        "help": "train the whole encoder in train mode: the checkpoint's SpecAugment, LayerDrop and dropouts "
                "apply (inputs from audio, not the frame cache); unset: the protocol's (text off, authors on)"})
    best_layer_by: str | None = field(default=None, metadata={
        "help": "layer best: setting (one layer per model and setting, UA averaged over corpora) or target "
                "(the probes' best layer for this test corpus); unset: the protocol's (text setting, authors "
                "target)", "choices": BEST_LAYER_BY})
    probe_results: str | None = field(default=None, metadata={
        "help": "probes' results.parquet for best_layer_by target (default: the newest under "
                "<cache root>/runs/probes with rows for this model, setting and test corpus)"})
    folds: tuple[int, ...] = field(default=(0, 1, 2, 3, 4), metadata={"help": "folds to run"})
    train: TrainConfig = field(default_factory=TrainConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    ba: BASettings = field(default_factory=BASettings)
    wg: WGSettings = field(default_factory=WGSettings)
    use_cache: bool = field(default=True, metadata={"help": "read frozen states from the frame cache"})
    cache_root: str | None = field(default=None, metadata={"help": "cache root (default $CROSSLING_CACHE or ./cache)"})
    out: str | None = field(default=None, metadata={"help": "output folder (default under runs/finetune)"})
    device: str = field(default="auto", metadata={
        "help": "torch device: auto (CUDA if present, else CPU), cpu, cuda ...", **DEVICE_RULE})
    language: str | None = field(default=None, metadata={"help": "model language for unregistered models"})
    alias: str | None = field(default=None, metadata={"help": "model name for caches, results and best layers (default: the model's)"})
    save_checkpoints: bool = field(default=True, metadata={"help": "save each fold's adapters and head"})

    def __post_init__(self) -> None:
        from featstore.configs import ConfigError, check_fields
        from finetune.heads import HEADS

        check_fields(self)  # types, bounds and choices from the fields' metadata
        problems = []
        try:
            object.__setattr__(self, "strategy", canonical_strategy(self.strategy))
        except ValueError as err:
            problems.append(f"FinetuneConfig.strategy: {err}")
        if self.scope not in SCOPES:
            problems.append(f"FinetuneConfig.scope: unknown scope {self.scope!r}; choose from {', '.join(SCOPES)}")
        if self.head not in HEADS:
            problems.append(f"FinetuneConfig.head: unknown head {self.head!r}; choose from {', '.join(HEADS)}")
        layer = self.layer
        if isinstance(layer, str) and layer not in LAYER_RULES:  # best, best-smallest (probes.results)
            if not layer.isdigit():
                problems.append(f"FinetuneConfig.layer: layer must be a positive integer, 'best' or 'best-smallest', got {layer!r}")
            else:
                object.__setattr__(self, "layer", int(layer))
        elif isinstance(layer, bool) or not isinstance(layer, (int, str)):
            problems.append(f"FinetuneConfig.layer: layer must be a positive integer or 'best', got {layer!r}")
        elif isinstance(layer, int) and layer < 1:
            problems.append(f"FinetuneConfig.layer: layer must be >= 1, got {layer}")
        if self.two_stage and not self.source_corpus:
            problems.append("FinetuneConfig.source_corpus: a two-stage run needs a source corpus (--source)")
        if self.source_corpus and not self.two_stage:
            problems.append("FinetuneConfig.source_corpus: a source corpus is only used by two-stage runs "
                            "(add --two-stage)")
        if self.valid_corpus is not None and not str(self.valid_corpus).strip():
            problems.append("FinetuneConfig.valid_corpus: give train, test or a corpus name")
        if self.protocol in PROTOCOL_DEFAULTS:  # else check_fields has already raised
            defaults = PROTOCOL_DEFAULTS[self.protocol]
            for name in PROTOCOL_FIELDS:
                if getattr(self, name) is None:
                    object.__setattr__(self, name, defaults[name])
            object.__setattr__(self, "train", self.train.resolved(
                batch_size=int(defaults["batch_size"]),
                equal_loss_resets_patience=bool(defaults["equal_loss_resets_patience"])))
        folds = tuple(self.folds)
        if not folds or min(folds) < 0 or len(set(folds)) != len(folds):
            problems.append(f"FinetuneConfig.folds: folds must be distinct non-negative integers, got {self.folds}")
        if problems:
            raise ConfigError(problems)
        object.__setattr__(self, "folds", folds)

    def effective(self) -> dict[str, object]:
        """The value of each protocol option this run uses (after ``protocol`` filled the
        unset ones): recorded in every result row and checkpoint."""
        return {"protocol": self.protocol, **{n: getattr(self, n) for n in PROTOCOL_FIELDS},
                "batch_size": self.train.batch_size,
                "equal_loss_resets_patience": self.train.equal_loss_resets_patience}

    def to_json(self) -> str:
        """The config as JSON (recorded with every result)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True, default=list)


@dataclass
class _Corpus:
    name: str
    language: str
    manifest: pl.DataFrame
    fingerprint: str
    folds: pl.DataFrame
    scheme: str
    cache: FeatureCache | None = None
    cache_fingerprint: str = ""
    waves: dict = field(default_factory=dict)

    def part(self, fold: int, part: str, state: int) -> ClipSet:
        ids = self.folds.filter((pl.col("fold") == fold) & (pl.col("part") == part))["utt_id"].to_list()
        rows = self.manifest.filter(pl.col("utt_id").is_in(ids))
        if rows.is_empty():
            raise FinetuneError(f"{self.name}: fold {fold} has no {part} utterances with one of {CANONICAL_EMOTIONS}")
        uid = rows["utt_id"].to_list()
        labels = labels_to_indices(rows["emotion"].to_list())
        lengths = rows["duration"].to_numpy()
        # durations order clips like their frame counts; integers in microseconds
        lengths = np.round(lengths * 1e6).astype(np.int64)
        name = f"{self.name}/{part}/fold{fold}"
        if self.cache is not None:
            return ClipSet(uid, labels, lengths, frames=self.cache, state=state, name=name)
        return ClipSet(uid, labels, lengths, waves=self.waves, name=name)


def run_finetune(config: FinetuneConfig, base: LoadedModel | None = None, log: Log | None = None,
                 on_epoch: Callable[[dict], None] | None = None, *, only_fold: int | None = None) -> pl.DataFrame:
    """Fine-tune and test one condition over ``config.folds``; write the run to
    ``config.out`` (results, predictions, epoch log, Table I, config, checkpoints).

    Parameters
    ----------
    config : :class:`FinetuneConfig`; ``config.alias`` (default: the loaded model's) names the
        model in the cache folder, the best-layer lookup and the results; ``config.device``
        ``auto`` is CUDA when present, else CPU (``featstore.models.resolve_device``)
    base : an already loaded ``featstore.models.LoadedModel`` (default: ``load_model``)
    log : receives progress lines (default: silent)
    on_epoch : receives each epoch's log row (with ``fold``)
    only_fold : train and test only this fold of ``config.folds`` and write its part of the
        run (``finetune.results.write_fold_part``) instead of the run's files; once every
        fold's part is there, ``finetune.results.gather_fold_parts`` writes the run exactly
        as one call over all folds does (a study on a cluster runs each fold as a job)

    Returns
    -------
    The results table: one row per fold (see :mod:`finetune.results`).
    """
    from featstore.models import load_model, resolve_device

    say = log or (lambda _msg: None)
    try:
        device = resolve_device(config.device)
    except ValueError as err:
        raise FinetuneError(str(err)) from err
    if base is None:
        base = load_model(config.model, alias=config.alias, language=config.language, device=str(device),
                          cache_root=config.cache_root)
    elif config.alias and base.alias != config.alias:
        base = dataclasses.replace(base, alias=config.alias)  # the name travels into checkpoints too
    alias = base.alias
    names = [config.train_corpus, config.test_corpus] + ([config.source_corpus] if config.two_stage else [])
    if config.valid_corpus not in ("train", "test"):
        names.append(str(config.valid_corpus))
    corpora = {n: _load_corpus(n, config.cache_root) for n in dict.fromkeys(names)}
    train_c, test_c = corpora[config.train_corpus], corpora[config.test_corpus]
    source_c = corpora[config.source_corpus] if config.two_stage else None
    setting = _setting(base.language, train_c, test_c, source_c)
    layer = _layer(config, alias, setting, base)
    hidden_state = layer + 1 if config.layer_means == "authors" else layer
    if hidden_state > base.n_hidden_states - 1:
        raise FinetuneError(f"layer {layer} (layer_means {config.layer_means}: {hidden_state} encoder layers) out "
                            f"of range: {alias} has {base.n_hidden_states - 1} layers")
    model_config = PeftModelConfig(layer=hidden_state, strategy=config.strategy, scope=config.scope,
                                   head=config.head, lora=config.lora, ba=config.ba, wg=config.wg,
                                   init_seed=config.train.seed,
                                   train_mode_regularisation=bool(config.train_mode_regularisation))
    state = model_config.input_state
    probe = SERModel(copy.deepcopy(base.encoder), model_config, base.do_normalize).to(device)
    trainable, total = count_parameters(probe)
    say(f"{alias} layer {layer} (hidden state {hidden_state}) {config.strategy} ({config.scope}): "
        f"{trainable:,} trainable of {total:,} parameters ({100 * trainable / total:.2f}%); "
        f"protocol {config.protocol}: " + ", ".join(f"{k} {v}" for k, v in config.effective().items()
                                                   if k != "protocol"))

    def valid_of(stage_corpus: _Corpus) -> _Corpus:
        if config.valid_corpus == "train":
            return stage_corpus
        return test_c if config.valid_corpus == "test" else corpora[str(config.valid_corpus)]

    try:
        for c in corpora.values():
            _attach_inputs(c, config, alias, base, probe, state, say)
        del probe
        out = Path(config.out) if config.out else _default_out(config, alias, setting, layer)
        rows, preds, logs = [], [], []
        if only_fold is not None and only_fold not in config.folds:
            raise FinetuneError(f"fold {only_fold} is not one of the run's folds {list(config.folds)}")
        for fold in config.folds if only_fold is None else (only_fold,):
            say(f"fold {fold}: training on {config.train_corpus}"
                + (f" after {config.source_corpus}" if config.two_stage else ""))
            model = SERModel(copy.deepcopy(base.encoder), model_config, base.do_normalize).to(device)
            epoch_cb = (lambda row, f=fold: on_epoch({"fold": f, **row})) if on_epoch else None
            first: FitResult | None = None
            valid_c = valid_of(train_c)
            if source_c is not None:
                first, result = fit_two_stage(
                    model, source_c.part(fold, "train", state), valid_of(source_c).part(fold, "valid", state),
                    train_c.part(fold, "train", state), valid_c.part(fold, "valid", state), config.train, epoch_cb,
                    schedule=str(config.two_stage_schedule))
            else:
                result = fit(model, train_c.part(fold, "train", state), valid_c.part(fold, "valid", state),
                             config.train, stage="train", on_epoch=epoch_cb)
            test = test_c.part(fold, "test", state)
            _, probs = evaluate(model, test, config.train.batch_size, config.train)
            from probes.metrics import classification_metrics

            metrics = classification_metrics(test.labels, probs.argmax(1))
            say(f"fold {fold}: UA {100 * metrics['ua']:.1f} % WA {100 * metrics['wa']:.1f} % after {result.epochs} epochs"
                + (f" (stage 2 from epoch {result.switch_epoch})" if first is not None else "")
                + f"; kept epoch {result.kept_run_epoch} ({result.kept_stage})")
            key = {"model": alias, "setting": setting, "train_corpus": config.train_corpus,
                   "test_corpus": config.test_corpus, "layer": layer, "fold": fold, "head": config.head}
            run = {"model_language": base.language,
                   "stage1_corpus": source_c.name if source_c else train_c.name,
                   "stage2_corpus": train_c.name if source_c else None,
                   "stage1_valid_corpus": valid_of(source_c).name if source_c else valid_c.name,
                   "stage2_valid_corpus": valid_c.name if source_c else None,
                   **config.effective(), "hidden_state": hidden_state,
                   "switch_epoch": result.switch_epoch, "kept_epoch": result.kept_run_epoch,
                   "kept_stage": result.kept_stage}
            ckpt = ""
            if config.save_checkpoints:
                info = {**key, **run, "source_corpus": config.source_corpus, "strategy": config.strategy,
                        "scope": config.scope, "two_stage": config.two_stage, "seed": config.train.seed,
                        "ua": metrics["ua"], "config_json": config.to_json()}
                ckpt = str(save_checkpoint(out / "checkpoints" / f"fold{fold}", model, base_record(base), info))
            rows.append({**_row(key, metrics, result, first, config, train_c, test_c, source_c, base,
                                len(test), trainable, total, ckpt), **run,
                         "n_valid": len(valid_c.folds.filter((pl.col("fold") == fold) & (pl.col("part") == "valid")))})
            for table in ([first.log] if first else []) + [result.log]:
                logs += [{"fold": fold, **r} for r in table]
            preds.append(_predictions(key, config, test, probs))
        frame = results_frame(rows)
        predictions = pl.concat(preds) if preds else pl.DataFrame(schema=PREDICTION_SCHEMA_FT)
        log_frame = pl.DataFrame(logs, schema=LOG_SCHEMA)
        if only_fold is not None:
            from finetune.results import write_fold_part

            say(f"fold {only_fold}: part written to {write_fold_part(out, only_fold, frame, predictions, log_frame)}")
        else:
            paths = write_finetune_run(out, frame, predictions, log_frame, config.to_json())
            say(f"results in {paths['results']}; Table I in {paths['table_one_md']}")
    finally:  # the frame caches are closed on errors too
        for c in corpora.values():
            if c.cache is not None:
                c.cache.close()
    return frame


def _load_corpus(name: str, cache_root: str | None) -> _Corpus:
    from featstore.manifest import four_class, load_manifest, manifest_fingerprint
    from featstore.paths import manifest_path, splits_path
    from featstore.splits import load_folds

    try:
        manifest = load_manifest(manifest_path(name, cache_root))
        folds, meta = load_folds(splits_path(name, cache_root))
    except FileNotFoundError as err:
        raise FinetuneError(str(err)) from err
    fingerprint = manifest_fingerprint(manifest)
    if meta.get("manifest_fingerprint") and meta["manifest_fingerprint"] != fingerprint:
        raise FinetuneError(f"{name}: the fold table was made for another manifest "
                            f"({meta['manifest_fingerprint']} != {fingerprint}); rerun `featstore splits {name}`")
    # only the utterances the folds use count (ESD's manifest holds Mandarin and English
    # speakers; its folds may take one language), as in the probes
    used = manifest.filter(pl.col("utt_id").is_in(folds["utt_id"].unique().to_list()))
    langs = used["language"].unique().to_list()
    if len(langs) != 1:
        raise FinetuneError(f"{name}: the folds mix languages {sorted(map(str, langs))}; make one-language "
                            f"folds with `featstore splits {name} --language CODE`")
    return _Corpus(name, str(langs[0]), four_class(used), fingerprint, folds, str(meta.get("scheme", "")))


def _setting(model_language: str, train: _Corpus, test: _Corpus, source: _Corpus | None) -> str:
    from probes.settings import setting_of

    try:
        return setting_of(model_language, train.language, test.language)
    except ValueError:
        if source is None:
            raise
    return setting_of(model_language, source.language, test.language)


def _layer(config: FinetuneConfig, alias: str, setting: str, base: LoadedModel) -> int:
    if config.layer == "best" and config.best_layer_by == "target":
        layer = best_layer_for_target(alias, setting, config.test_corpus, config.cache_root, config.probe_results)
    elif config.layer in LAYER_RULES:
        from probes.results import best_layer

        try:
            layer = best_layer(alias, setting, config.cache_root, rule=LAYER_RULES[config.layer])
        except (FileNotFoundError, KeyError) as err:
            raise FinetuneError(f"--layer best: {err}") from err
        if layer < 1:
            raise FinetuneError(f"the probes' best layer of {alias} in {setting} is {layer}; fine-tuning needs k >= 1")
    else:
        layer = int(config.layer)
    if layer > base.n_hidden_states - 1:
        raise FinetuneError(f"layer {layer} out of range: {alias} has {base.n_hidden_states - 1} layers")
    return layer


def best_layer_for_target(alias: str, setting: str, test_corpus: str, cache_root: str | None = None,
                          probe_results: str | Path | None = None) -> int:
    """The probes' best transformer layer (k >= 1; highest UA averaged over folds, ties to the
    lower layer) of ``alias`` in ``setting`` tested on ``test_corpus`` (the authors' choice:
    one layer per target corpus).

    ``probe_results``: a layer-wise ``results.parquet``; default: the newest one under
    ``<cache root>/runs/probes`` that has rows for this model, setting and test corpus.
    """
    from featstore.paths import runs_root
    from probes.results import best_layer_table

    def rows_of(path: Path) -> pl.DataFrame:
        try:
            frame = pl.read_parquet(path, columns=["model", "setting", "test_corpus", "layer", "ua", "fold"])
        except Exception as err:  # noqa: BLE001 - any unreadable file is named to the user
            raise FinetuneError(f"{path}: not a probes results table ({err})") from err
        return frame.filter((pl.col("model") == alias) & (pl.col("setting") == setting)
                            & (pl.col("test_corpus") == test_corpus) & (pl.col("layer") >= 1))

    if probe_results is not None:
        path = Path(probe_results)
        if not path.exists():
            raise FinetuneError(f"--layer best (per target): {path} does not exist")
        frame = rows_of(path)
    else:
        root = runs_root(cache_root) / "probes"
        candidates = sorted(root.rglob("results.parquet"), key=lambda q: q.stat().st_mtime, reverse=True) \
            if root.exists() else []
        frame, path = pl.DataFrame(), root
        for cand in candidates:
            try:
                frame, path = rows_of(cand), cand
            except FinetuneError:  # another tool's results.parquet: not a candidate
                continue
            if not frame.is_empty():
                break
    if frame.is_empty():
        raise FinetuneError(f"--layer best (per target): no probe results for model {alias!r} in setting "
                            f"{setting!r} tested on {test_corpus!r} (looked in {path}); run `probes layerwise` "
                            f"with this test corpus, or give --layer k")
    return int(best_layer_table(frame, min_layer=1)["layer"][0])


def _attach_inputs(c: _Corpus, config: FinetuneConfig, alias: str, base: LoadedModel, model: SERModel, state: int,
                   say: Log) -> None:
    """Use the frame cache when it holds float32 hidden state ``state`` of this model and
    it matches what the model computes; else load the audio."""
    from featstore.audio import load_row

    rows = c.manifest.filter(pl.col("utt_id").is_in(c.folds["utt_id"].to_list())).to_dicts()
    if config.use_cache and config.train_mode_regularisation:
        say(f"{c.name}: computing the front end from audio (train-mode regularisation: the frozen part is "
            f"stochastic in training, a cache cannot stand in for it)")
    elif config.use_cache:
        cache, why = _usable_cache(alias, c.name, base, state, config.cache_root)
        if cache is not None:
            missing = [r["utt_id"] for r in rows if r["utt_id"] not in cache]
            if missing:
                why = f"{len(missing)} utterance(s) missing, e.g. {missing[:3]}"
            else:
                why = _compare(cache, rows[0], model, state, base.sample_rate_hz)
            if why is None:
                c.cache, c.cache_fingerprint = cache, cache.fingerprint
                say(f"{c.name}: reading hidden state {state} from the frame cache")
                return
            cache.close()
        say(f"{c.name}: computing the frozen front end from audio ({why})")
    c.waves = {r["utt_id"]: load_row(r, sample_rate_hz=base.sample_rate_hz) for r in rows}


def _usable_cache(alias: str, corpus: str, base: LoadedModel, state: int, root: str | None
                  ) -> tuple[FeatureCache | None, str]:
    """The frame cache of ``alias`` on ``corpus`` (the merged file, else the complete shard
    set: :func:`featstore.cache.find_cache`) when it holds float32 state ``state`` of these
    weights; else ``(None, why not)``."""
    from featstore.cache import CacheError, find_cache, open_cache

    try:
        cache = open_cache(find_cache(alias, corpus, root))
    except (CacheError, OSError) as err:
        return None, str(err)
    prov = cache.provenance
    problems = []
    if not cache.has_frames or state not in cache.frame_layers:
        problems.append(f"no frames of hidden state {state} (extract with --frames)")
    if prov.get("dtype") != "float32":
        problems.append(f"frames stored as {prov.get('dtype')}, need float32")
    if prov.get("model_fingerprint") not in (None, base.fingerprint):
        problems.append("made with other model weights")
    if problems:
        cache.close()
        return None, "; ".join(problems)
    return cache, ""


def _compare(cache: FeatureCache, row: dict, model: SERModel, state: int, rate: int) -> str | None:
    """None when the cached state of one utterance equals the recomputed one."""
    from featstore.audio import load_row

    wave = load_row(row, sample_rate_hz=rate)
    h, _ = model.input_states([wave])
    got = cache.frames(row["utt_id"], [state])[0]
    want = h[0].float().cpu().numpy()
    if got.shape != want.shape:
        return f"cached frames of {row['utt_id']} have shape {got.shape}, the model makes {want.shape}"
    err = float(np.abs(got - want).max())
    scale = max(1.0, float(np.abs(want).max()))
    if err > 1e-3 * scale:
        return f"cached frames of {row['utt_id']} differ from the model's by {err:.2e}"
    return None


def _default_out(config: FinetuneConfig, alias: str, setting: str, layer: int) -> Path:
    from featstore.paths import runs_root

    stage = f"_2stg-{config.source_corpus}" if config.two_stage else ""
    protocol = "" if config.protocol == "text" else f"_{config.protocol}"
    name = (f"{setting}_{config.train_corpus}-{config.test_corpus}{stage}_{config.strategy}_{config.scope}"
            f"_L{layer}_s{config.train.seed}{protocol}")
    return runs_root(config.cache_root) / "finetune" / alias.replace("/", "_") / name


def _row(key: dict, metrics: dict, result: FitResult, first: FitResult | None, config: FinetuneConfig,
         train_c: _Corpus, test_c: _Corpus, source_c: _Corpus | None, base: LoadedModel, n_test: int,
         trainable: int, total: int, ckpt: str) -> dict:
    row = {**key, **{k: v for k, v in metrics.items() if k != "confusion"}}
    row.update({
        "confusion": json.dumps(metrics["confusion"]), "epochs": result.epochs, "best_epoch": result.best_epoch,
        "best_val_loss": result.best_valid_loss, "best_val_acc": result.best_valid_acc,
        "n_train": len(train_c.folds.filter((pl.col("fold") == key["fold"]) & (pl.col("part") == "train"))),
        "n_valid": len(train_c.folds.filter((pl.col("fold") == key["fold"]) & (pl.col("part") == "valid"))),
        "n_test": n_test,
        "cache_path": "", "cache_fingerprint": train_c.cache_fingerprint,
        "test_cache_path": "", "test_cache_fingerprint": test_c.cache_fingerprint,
        "model_fingerprint": base.fingerprint, "manifest_fingerprint": train_c.fingerprint,
        "test_manifest_fingerprint": test_c.fingerprint, "fold_scheme": train_c.scheme,
        "test_fold_scheme": test_c.scheme, "seed": config.train.seed, "config_json": config.to_json(),
        "strategy": config.strategy, "two_stage": config.two_stage, "scope": config.scope,
        "source_corpus": source_c.name if source_c else None, "train_language": train_c.language,
        "test_language": test_c.language, "source_language": source_c.language if source_c else None,
        "source_manifest_fingerprint": source_c.fingerprint if source_c else None,
        "source_fold_scheme": source_c.scheme if source_c else None,
        "stage1_epochs": first.epochs if first else None,
        "trainable_params": trainable, "total_params": total, "checkpoint": ckpt,
    })
    if train_c.cache is not None:
        row["cache_path"] = cache_location(train_c.cache.paths)
    if test_c.cache is not None:
        row["test_cache_path"] = cache_location(test_c.cache.paths)
    return row


def _predictions(key: dict, config: FinetuneConfig, test: ClipSet, probs: np.ndarray) -> pl.DataFrame:
    data = {k: [key[k]] * len(test) for k in ("model", "setting", "train_corpus", "test_corpus", "layer", "fold")}
    data["utt_id"] = list(test.utt_ids)
    data["true"] = [CANONICAL_EMOTIONS[i] for i in test.labels]
    data["pred"] = [CANONICAL_EMOTIONS[i] for i in probs.argmax(1)]
    for j, c in enumerate(CANONICAL_EMOTIONS):
        data[f"prob_{c}"] = probs[:, j].astype(np.float32)
    data["strategy"] = [config.strategy] * len(test)
    data["two_stage"] = [config.two_stage] * len(test)
    data["scope"] = [config.scope] * len(test)
    return pl.DataFrame(data, schema=PREDICTION_SCHEMA_FT)


__all__ = ["FinetuneConfig", "FinetuneError", "run_finetune"]
