"""Importing the paper's own split files (../shared/paper/split_id) onto corpora that hold them."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from featstore.corpora import read_esd
from featstore.corpora.testing import write_esd_tree
from featstore.manifest import make_manifest, save_manifest
from featstore.paths import manifest_path, splits_path
from featstore.splits import MissingFilesError, import_paper_folds, load_folds, read_paper_splits

SPLIT_ID = Path(__file__).resolve().parents[2].parent / "shared" / "paper" / "split_id"
FOLDER_PART = {"train": "train", "eval": "valid", "test": "test"}


def expected_folds(corpus: str) -> dict[tuple[int, str], list[tuple[str, str]]]:
    """(fold, part) -> [(file, answer)] read straight from the csv files (polars, not csv)."""
    out = {}
    for folder, part in FOLDER_PART.items():
        for fold in range(5):
            frame = pl.read_csv(SPLIT_ID / corpus / folder / f"metadata_fold{fold}.csv")
            files = [f.strip() for f in frame["file"].to_list()]
            answers = [a.strip() for a in frame["answer"].to_list()]
            out[(fold, part)] = list(zip(files, answers, strict=True))
    return out


def all_files(expected):
    return sorted({pair for pairs in expected.values() for pair in pairs})


@pytest.fixture(scope="module")
def esd_tree(tmp_path_factory):
    """A synthetic ESD tree holding exactly the files that the paper's CN_ESD splits name."""
    root = tmp_path_factory.mktemp("esd")
    files = [(Path(name).stem, answer) for name, answer in all_files(expected_folds("CN_ESD"))]
    write_esd_tree(root, files, split=None, duration_s=0.03)
    return root


@pytest.mark.slow
def test_cn_esd_folds_reproduced_exactly_on_a_synthetic_esd_tree(esd_tree):
    manifest = read_esd(esd_tree)
    assert manifest.height == 2000
    folds = import_paper_folds(manifest, SPLIT_ID / "CN_ESD")
    assert folds.scheme == "paper-import"
    assert folds.meta["missing"] == [] and folds.meta["label_disagreements"] == []
    expected = expected_folds("CN_ESD")
    for fold in range(5):
        sizes = [len(folds.ids(fold, part)) for part in ("train", "valid", "test")]
        assert sizes == [1600, 200, 200]
        for part in ("train", "valid", "test"):
            assert folds.ids(fold, part) == sorted(Path(f).stem for f, _ in expected[(fold, part)])
    assert folds.meta["counts"]["2"] == {"train": 1600, "valid": 200, "test": 200}


@pytest.mark.slow
def test_every_missing_file_is_named(esd_tree, tmp_path):
    partial = tmp_path / "esd"
    shutil.copytree(esd_tree, partial)
    removed = sorted(partial.rglob("*.wav"))[::250]
    for path in removed:
        path.unlink()
    manifest = read_esd(partial)
    with pytest.raises(MissingFilesError) as info:
        import_paper_folds(manifest, SPLIT_ID / "CN_ESD")
    names = sorted(p.name for p in removed)
    assert info.value.missing == names
    message = str(info.value)
    assert f"{len(names)} of the 2000 files" in message
    assert all(name in message for name in names)
    folds = import_paper_folds(manifest, SPLIT_ID / "CN_ESD", allow_missing=True)
    assert folds.meta["missing"] == names
    assert not set(folds.table["utt_id"]) & {Path(n).stem for n in names}
    assert folds.table.height == 10000 - 5 * len(names)


def names_only_manifest(corpus: str, prefix: str = "", emotion_of=None) -> pl.DataFrame:
    rows = []
    for name, answer in all_files(expected_folds(corpus)):
        emotion = emotion_of(name, answer) if emotion_of else answer.lower()
        rows.append(dict(utt_id=prefix + Path(name).stem, corpus=corpus.lower(), language="xx", speaker="s",
                         emotion=emotion, label=answer, path=f"/corpus/{name}", duration=1.0,
                         sample_rate=16000))
    return make_manifest(rows)


def test_pavoque_and_iemocap_names_match_by_path_stem():
    for corpus, distinct in (("DE_PAVOQUE", 2146), ("EN_IEMOCAP", 2000)):
        manifest = names_only_manifest(corpus, prefix="x:")  # utt_ids differ, path stems match
        assert manifest.height == distinct
        folds = import_paper_folds(manifest, SPLIT_ID / corpus)
        expected = expected_folds(corpus)
        for fold in range(5):
            for part in ("train", "valid", "test"):
                assert folds.ids(fold, part) == sorted("x:" + Path(f).stem for f, _ in expected[(fold, part)])
        assert {k: sum(v.values()) for k, v in folds.meta["counts"].items()} == {str(f): 2000 for f in range(5)}
    # the paper's PAVOQUE test sets overlap between folds (independent draws)
    tests = [set(folds_ids) for folds_ids in (
        [f for f, _ in expected_folds("DE_PAVOQUE")[(k, "test")]] for k in range(5))]
    assert tests[0] & tests[1]


def test_label_disagreements_are_reported():
    def flip(name, answer):
        return "sad" if name == "spike0013-angry.wav" else answer.lower()

    manifest = names_only_manifest("DE_PAVOQUE", emotion_of=flip)
    folds = import_paper_folds(manifest, SPLIT_ID / "DE_PAVOQUE")
    wrong = folds.meta["label_disagreements"]
    n_listed = sum(name == "spike0013-angry.wav" for pairs in expected_folds("DE_PAVOQUE").values()
                   for name, _ in pairs)
    assert len(wrong) == n_listed > 0
    assert {(w["file"], w["answer"], w["emotion"]) for w in wrong} == {("spike0013-angry.wav", "Angry", "sad")}


def test_bad_split_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such split folder"):
        read_paper_splits(tmp_path / "none")
    (tmp_path / "x" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="eval"):
        read_paper_splits(tmp_path / "x")
    for folder in ("eval", "test"):
        (tmp_path / "x" / folder).mkdir()
    for folder in ("train", "eval"):
        (tmp_path / "x" / folder / "metadata_fold0.csv").write_text("file,answer\r\na.wav,Sad\r\n")
    with pytest.raises(ValueError, match="'test' has no file for fold"):
        read_paper_splits(tmp_path / "x")
    (tmp_path / "x" / "test" / "metadata_fold0.csv").write_text("name,label\nb.wav,Sad\n")
    with pytest.raises(ValueError, match="header"):
        read_paper_splits(tmp_path / "x")
    (tmp_path / "x" / "test" / "metadata_fold0.csv").write_bytes("file,answer\nb.wav,Traurig\u00e9\n".encode("utf-16"))
    with pytest.raises(ValueError, match=r"test/metadata_fold0.csv: not UTF-8"):
        read_paper_splits(tmp_path / "x")


def test_splits_command_imports_and_names_missing_files(tmp_path, monkeypatch):
    from cli import featstore_app

    monkeypatch.setenv("CROSSLING_CACHE", str(tmp_path))
    manifest = names_only_manifest("EN_IEMOCAP")
    save_manifest(manifest.filter(pl.col("utt_id") != "Ses01F_impro01_F002"), manifest_path("iemocap"))
    runner = CliRunner()
    result = runner.invoke(featstore_app, ["splits", "iemocap", "--import", str(SPLIT_ID / "EN_IEMOCAP")])
    assert result.exit_code == 2 and "Ses01F_impro01_F002.wav" in result.output
    result = runner.invoke(featstore_app, ["splits", "iemocap", "--import", str(SPLIT_ID / "EN_IEMOCAP"),
                                           "--allow-missing"])
    assert result.exit_code == 0, result.output
    assert "paper-import" in result.output and "Ses01F_impro01_F002.wav" in result.output
    table, meta = load_folds(splits_path("iemocap"))
    assert meta["missing"] == ["Ses01F_impro01_F002.wav"] and meta["scheme"] == "paper-import"


def test_unusable_audio_counts_as_missing_with_its_reason():
    manifest = names_only_manifest("EN_IEMOCAP")
    bad = {"Ses01F_impro01_F002": "silent (clipping-only or all zeros)"}
    with pytest.raises(MissingFilesError, match=r"Ses01F_impro01_F002\.wav \(unusable audio: silent"):
        import_paper_folds(manifest, SPLIT_ID / "EN_IEMOCAP", exclude=bad)
    # a bad file that the split does not list is not reported as left out of the folds
    extra = dict(names_only_manifest("EN_IEMOCAP").row(0, named=True), utt_id="Ses01F_impro09_F000",
                 path="/corpus/Ses01F_impro09_F000.wav")
    manifest = pl.concat([manifest, make_manifest([extra])], how="vertical_relaxed")
    folds = import_paper_folds(manifest, SPLIT_ID / "EN_IEMOCAP", allow_missing=True,
                               exclude={**bad, "Ses01F_impro09_F000": "silent"})
    assert folds.meta["unusable"] == bad and folds.meta["missing"] == ["Ses01F_impro01_F002.wav"]
    assert "Ses01F_impro01_F002" not in set(folds.table["utt_id"])


def test_no_overlap_is_one_short_error_with_or_without_allow_missing():
    from featstore.errors import CrosslingError
    from featstore.splits import NoOverlapError

    manifest = names_only_manifest("EN_IEMOCAP")  # IEMOCAP names against ESD's split files
    for allow in (False, True):
        with pytest.raises(NoOverlapError) as info:
            import_paper_folds(manifest, SPLIT_ID / "CN_ESD", allow_missing=allow)
        message = str(info.value)
        assert isinstance(info.value, CrosslingError) and len(message) < 1000
        assert "none of the 2000 files" in message and "CN_ESD" in message
        assert "Ses01F_" in message  # what the corpus holds, to compare with
        assert len(info.value.missing) == 2000
