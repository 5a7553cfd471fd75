"""Build a ready-to-run webMUSHRA listening test for utterance-level SER.

The stimuli are chosen as in the paper (12 per emotion per corpus from the test data,
improvised-only IEMOCAP, seeded) by ``featstore.splits.select_listening_subset``; this
module renames them to opaque keys, exports the selected stretch of each as a 16 kHz
16-bit wav, writes ``configs/<name>.yaml`` and the answer key.

Stimuli are drawn per *available* category: a corpus with fewer categories than the
response options (the paper's TJD: question, negation ~ angry, expectation ~ happy) gives
12 of each category it has. A category that is not a response option (TJD's ``question``
when unmapped) is dropped, unless it is added to the options (``emotions``) to be kept as
its own answer. A corpus no model is tested on may have no fold table: the corpora in
``BuildConfig.whole_corpus`` are then drawn from all their utterances. Both are recorded
per corpus in the provenance (``corpora``: pool, categories, dropped).

Layout under ``out_dir`` (copy ``configs/`` into the webMUSHRA root)::

    configs/<name>.yaml
    configs/resources/audio/<name>/<key>.wav
    <name>.key.csv          stimulus -> corpus, utt_id, language, true label (NOT under
                            configs/, which the web server publishes)
    <name>.build.json       provenance: seed, counts, manifest fingerprints
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import soundfile as sf

from featstore.errors import CrosslingError
from featstore.io import atomic_write, atomic_write_text
from featstore.manifest import CANONICAL_EMOTIONS, manifest_fingerprint
from probes.human import webmushra
from probes.human.keys import KEY_COLUMNS, check_key, read_key  # noqa: F401 - re-exported


class BuildError(CrosslingError, ValueError):
    """A listening test that cannot be built as asked; the message says what to change."""


RowLoader = Callable[[dict], np.ndarray]


@dataclass(frozen=True)
class BuildConfig:
    """What to put in the test. Defaults are the paper's (12 per emotion per corpus).

    Attributes
    ----------
    corpora : prepared corpus names, in the order of the paper's columns
    per_emotion : stimuli per emotion per corpus
    seed : seed of the stimulus selection and of the stimulus keys
    name : config name (``configs/<name>.yaml``) and webMUSHRA ``testId``
    emotions : response options, in the paper's order A H N S
    improvised_only : corpora restricted to improvised speech (the paper: IEMOCAP)
    sample_rate_hz : sample rate of the exported wavs
    ask_email : add an optional e-mail question to the finish page
    languages : native-language choices of the questionnaire (default: the languages of
        the selected corpora, in corpus order)
    whole_corpus : corpora drawn from all their utterances when they have no fold table
        (default the paper's TJD, which no model is tested on); any other corpus without
        one is an error
    """

    corpora: tuple[str, ...] = ("esd", "pavoque", "iemocap")
    per_emotion: int = 12
    seed: int = 0
    name: str = "ser-test"
    emotions: tuple[str, ...] = CANONICAL_EMOTIONS
    improvised_only: tuple[str, ...] = ("iemocap",)
    sample_rate_hz: int = 16000
    ask_email: bool = True
    languages: tuple[str, ...] = field(default=())
    whole_corpus: tuple[str, ...] = ("tjd",)

    def __post_init__(self) -> None:
        if not self.corpora:
            raise BuildError("corpora: give at least one corpus")
        if len(set(self.corpora)) != len(self.corpora):
            raise BuildError(f"corpora: duplicates in {self.corpora}")
        if self.per_emotion < 1:
            raise BuildError(f"per_emotion must be >= 1, got {self.per_emotion}")
        if not self.name or webmushra.sanitize_test_id(self.name) != self.name.lower():
            raise BuildError(f"name {self.name!r}: use letters, digits, '-' and '_' only")
        if self.sample_rate_hz <= 0:
            raise BuildError(f"sample_rate_hz must be positive, got {self.sample_rate_hz}")
        if not self.emotions:
            raise BuildError("emotions: give at least one response option")
        if len(set(self.emotions)) != len(self.emotions):
            raise BuildError(f"emotions: duplicates in {self.emotions}")


@dataclass(frozen=True)
class BuildResult:
    """Paths written by :func:`build_listening_test`."""

    config_path: Path
    key_path: Path
    audio_dir: Path
    provenance_path: Path
    n_stimuli: int


def select_stimuli(config: BuildConfig, root: str | Path | None = None) -> pl.DataFrame:
    """Select the stimuli of every corpus from its prepared manifest and folds
    (:func:`plan_stimuli` without its per-corpus notes)."""
    return plan_stimuli(config, root)[0]


def plan_stimuli(config: BuildConfig, root: str | Path | None = None) -> tuple[pl.DataFrame, dict[str, dict]]:
    """Select the stimuli of every corpus, per available category.

    Returns
    -------
    (selection, notes): the selected manifest rows, and per corpus ``pool`` (``folds``:
    the test parts of its fold table; ``whole``: all its utterances, no fold table),
    ``categories`` (the response options it has, drawn ``per_emotion`` each) and
    ``dropped`` (category -> utterances of the categories that are no response option).

    Raises
    ------
    BuildError
        A corpus without a fold table that is not in ``config.whole_corpus``, a corpus with
        none of the response options, or too few candidates in a category (the message
        names the corpus and the numbers found).
    """
    from featstore.manifest import load_manifest
    from featstore.paths import manifest_path, splits_path
    from featstore.splits import load_folds, select_listening_subset

    parts, notes = [], {}
    for corpus in config.corpora:
        manifest = load_manifest(manifest_path(corpus, root))
        counts = dict(manifest.group_by("emotion").len().iter_rows())
        categories = tuple(e for e in config.emotions if counts.get(e, 0) > 0)
        dropped = {e: int(n) for e, n in sorted(counts.items()) if e not in config.emotions}
        if not categories:
            raise BuildError(
                f"{corpus}: none of its categories {sorted(counts)} is a response option "
                f"{list(config.emotions)}; map them when preparing (featstore prepare --label-map "
                "'negation=angry,expectation=happy') or add one as its own answer (--emotions)")
        fpath = splits_path(corpus, root)
        if fpath.exists():
            folds, _meta = load_folds(fpath)
            pool = "folds"
        elif corpus in config.whole_corpus:
            folds = pl.DataFrame({"fold": [0] * manifest.height, "part": ["test"] * manifest.height,
                                  "utt_id": manifest["utt_id"].to_list()})
            pool = "whole"
        else:
            raise BuildError(
                f"{fpath}: no folds for {corpus}; run `featstore splits` first, or draw its stimuli "
                f"from all its utterances with --whole-corpus {corpus} (a corpus no model is tested on)")
        improvised = True if corpus in config.improvised_only else None
        try:
            parts.append(select_listening_subset(
                manifest, folds, per_emotion=config.per_emotion, seed=config.seed,
                improvised_only=improvised, emotions=categories,
            ))
        except ValueError as err:
            raise BuildError(f"{corpus}: {err}") from None
        notes[corpus] = {"pool": pool, "categories": list(categories), "dropped": dropped}
    return pl.concat(parts, how="diagonal_relaxed"), notes


def assign_keys(selection: pl.DataFrame, seed: int, prefix: str = "s") -> pl.DataFrame:
    """Give every row an opaque stimulus key (``s001``...) in a seeded random order, so
    that neither the key nor its position reveals corpus or label."""
    n = selection.height
    width = max(3, len(str(n)))
    order = np.random.default_rng(seed).permutation(n)
    keys = [f"{prefix}{i + 1:0{width}d}" for i in range(n)]
    shuffled = selection[order.tolist()]
    return shuffled.with_columns(pl.Series("stimulus", keys)).select(["stimulus", *selection.columns])


def default_loader(sample_rate_hz: int = 16000) -> RowLoader:
    """``featstore.audio.load_row`` at ``sample_rate_hz`` (mono float32, only the row's
    stretch)."""
    from featstore.audio import load_row

    return lambda row: load_row(row, sample_rate_hz=sample_rate_hz)


def export_wav(wave: np.ndarray, path: Path, sample_rate_hz: int) -> None:
    """Write ``wave`` (float, shape (n_samples,)) as 16-bit PCM, atomically."""
    wave = np.clip(np.asarray(wave, dtype=np.float32).reshape(-1), -1.0, 1.0)
    atomic_write(path, lambda tmp: sf.write(tmp, wave, sample_rate_hz, subtype="PCM_16"))


def build_listening_test(
    selection: pl.DataFrame,
    out_dir: str | Path,
    config: BuildConfig = BuildConfig(),
    loader: RowLoader | None = None,
    progress: Callable[[int, int], None] | None = None,
    selection_notes: dict[str, dict] | None = None,
) -> BuildResult:
    """Write config, audio and key for the selected utterances.

    Parameters
    ----------
    selection : manifest rows to use (columns of ``featstore.manifest.MANIFEST_SCHEMA``;
        ``emotion`` must be one of ``config.emotions``)
    out_dir : output folder (created)
    config : see :class:`BuildConfig`
    loader : row -> float32 waveform at ``config.sample_rate_hz``; default
        ``featstore.audio.load_row``
    progress : called as ``progress(done, total)`` after each exported file
    selection_notes : per-corpus notes of :func:`plan_stimuli`, kept in the provenance
    """
    missing = [c for c in ("utt_id", "corpus", "language", "emotion", "path") if c not in selection.columns]
    if missing:
        raise BuildError(f"selection: missing column(s) {missing}")
    if selection.is_empty():
        raise BuildError("selection: no utterances selected")
    bad = sorted(set(selection["emotion"].to_list()) - set(config.emotions))
    if bad:
        raise BuildError(f"selection: labels {bad} are not response options {list(config.emotions)}")
    dup = selection.filter(pl.struct("corpus", "utt_id").is_duplicated())
    if dup.height:
        raise BuildError(f"selection: utterances selected twice: {dup['utt_id'].to_list()[:5]}")
    loader = loader or default_loader(config.sample_rate_hz)
    out_dir = Path(out_dir)
    rel_audio = Path("configs") / "resources" / "audio" / config.name
    audio_dir = out_dir / rel_audio
    audio_dir.mkdir(parents=True, exist_ok=True)

    keyed = assign_keys(selection, config.seed)
    files, durations = [], []
    for i, row in enumerate(keyed.iter_rows(named=True)):
        wave = loader(row)
        export_wav(wave, audio_dir / f"{row['stimulus']}.wav", config.sample_rate_hz)
        files.append((rel_audio / f"{row['stimulus']}.wav").as_posix())
        durations.append(len(wave) / config.sample_rate_hz)
        if progress:
            progress(i + 1, keyed.height)

    extra = [c for c in ("speaker", "path", "start", "end") if c in keyed.columns]
    key = keyed.select([*KEY_COLUMNS, *extra]).rename({"path": "source_path"} if "path" in extra else {})
    key = key.with_columns(pl.Series("file", files), pl.Series("duration_s", durations))
    key_path = out_dir / f"{config.name}.key.csv"
    _write_csv(key, key_path)

    languages = config.languages or tuple(dict.fromkeys(selection["language"].to_list()))
    cfg = webmushra.make_config(
        dict(zip(key["stimulus"].to_list(), files, strict=True)), config.name,
        labels=config.emotions, languages=languages, ask_email=config.ask_email,
    )
    config_path = webmushra.write_config(cfg, out_dir / "configs" / f"{config.name}.yaml")
    webmushra.validate_config(webmushra.load_config(config_path), root=out_dir)

    counts = (keyed.group_by("corpus", "emotion").len().sort("corpus", "emotion")
              .iter_rows(named=True))
    prov = {
        "config": asdict(config),
        "n_stimuli": keyed.height,
        "labels": list(config.emotions),
        "corpora": dict(selection_notes or {}),
        "counts": [dict(r) for r in counts],
        # fingerprints of the selected rows (the manifests' own are in their parquet metadata)
        "selection_fingerprints": {
            c: manifest_fingerprint(selection.filter(pl.col("corpus") == c))
            for c in sorted(set(selection["corpus"].to_list()))
        },
        "key_sha256": file_sha256(key_path),
        "config_sha256": file_sha256(config_path),
    }
    prov_path = out_dir / f"{config.name}.build.json"
    _write_text(prov_path, json.dumps(prov, indent=2, default=str))
    return BuildResult(config_path, key_path, audio_dir, prov_path, keyed.height)


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_csv(frame: pl.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: frame.write_csv(tmp))


def _write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def parse_corpora(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"esd,pavoque"`` -> ``("esd", "pavoque")`` (lower-cased, blanks dropped)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(s.strip().lower() for s in items if s.strip())
