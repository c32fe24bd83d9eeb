"""The split manifest: stratified, seeded, small classes out, duplicates kept together."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from service.core.taxonomy import load_taxonomy
from service.modeltools import fashion_mnist
from service.modeltools.dataset import DataError, Manifest, load_data
from tests.paths import REPO

TAXONOMY = load_taxonomy(REPO / "examples" / "fashion-mnist" / "taxonomy.yaml")
SOURCE = REPO / ".data" / "fashion-mnist"


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 real Fashion-MNIST photos per class (20 of `bag`), as JPEG class folders."""
    if not (SOURCE / "train-labels-idx1-ubyte.gz").is_file():
        pytest.fail(f"{SOURCE} missing: run `make data` (make test does)")
    root = tmp_path_factory.mktemp("photos")
    fashion_mnist.write_image_folder(SOURCE, root, per_class=40, size=32)
    for extra in sorted((root / "bag").iterdir())[20:]:
        extra.unlink()
    return root


def test_split_is_stratified_seeded_and_leaves_small_classes_out(photos: Path) -> None:
    manifest = load_data(photos, TAXONOMY, seed=3)
    assert manifest.excluded_classes == {"bag": 20}
    assert set(manifest.counts) == set(fashion_mnist.CLASS_IDS) - {"bag"}
    for counts in manifest.counts.values():  # 40 photos: 3 val, 3 test (7.5 % each), 34 train
        assert counts == {"train": 34, "val": 3, "test": 3}
    assert load_data(photos, TAXONOMY, seed=3).entries == manifest.entries
    other = load_data(photos, TAXONOMY, seed=4)
    assert other.entries != manifest.entries and other.sha256 != manifest.sha256
    assert "left out (under 25 images): bag (20)" in manifest.summary()


def test_manifest_round_trips_and_is_what_later_steps_read(photos: Path, tmp_path: Path) -> None:
    manifest = load_data(photos, TAXONOMY)
    manifest.write(tmp_path / "manifest.json")
    again = load_data(tmp_path / "manifest.json", TAXONOMY)
    assert again == manifest and again.sha256 == manifest.sha256
    assert all(again.path_of(e).is_file() for e in again.split("test"))
    foreign = load_taxonomy(REPO / "service" / "core" / "data" / "taxonomy.yaml")
    with pytest.raises(DataError, match="made for taxonomy 'fashion-mnist-1'"):
        load_data(tmp_path / "manifest.json", foreign)


def test_duplicates_stay_in_one_split_and_conflicting_labels_are_left_out(
    photos: Path, tmp_path: Path
) -> None:
    root = tmp_path / "photos"
    shutil.copytree(photos, root)
    coats = sorted((root / "coat").iterdir())
    for i in range(5):  # five photos twice, under another name
        shutil.copy(coats[i], root / "coat" / f"copy-{i}.jpg")
    shutil.copy(coats[10], root / "shirt" / "mislabelled.jpg")  # a coat filed as a shirt too
    manifest = load_data(root, TAXONOMY)
    by_hash: dict[str, set[str]] = {}
    for entry in manifest.entries:
        by_hash.setdefault(entry.sha256, set()).add(entry.split)
    assert all(len(splits) == 1 for splits in by_hash.values())
    assert len(manifest.duplicate_groups) == 5
    assert manifest.conflicting_duplicates == [
        sorted([f"coat/{coats[10].name}", "shirt/mislabelled.jpg"])
    ]
    names = {e.path for e in manifest.entries}
    assert f"coat/{coats[10].name}" not in names and "shirt/mislabelled.jpg" not in names


def test_csv_input_with_vins_and_clear_errors(photos: Path, tmp_path: Path) -> None:
    rows = [f"{p.relative_to(photos)},{p.parent.name},FMN1010001A{i:06d}"
            for i, p in enumerate(sorted(photos.glob("*/*.jpg")))]
    table = photos / "labels.csv"
    table.write_text("path,class_id,vin\n" + "\n".join(rows) + "\n")
    manifest = load_data(table, TAXONOMY)
    assert Counter(e.split for e in manifest.entries)["test"] == 27
    assert all(e.vin and e.vin.startswith("FMN101") for e in manifest.entries)

    (tmp_path / "bad.csv").write_text("file,label\nx.jpg,coat\n")
    with pytest.raises(DataError, match=r"columns path,class_id\[,vin\]"):
        load_data(tmp_path / "bad.csv", TAXONOMY)
    unknown = tmp_path / "unknown"
    (unknown / "hat").mkdir(parents=True)
    shutil.copy(next(photos.glob("coat/*.jpg")), unknown / "hat" / "a.jpg")
    with pytest.raises(DataError, match=r"does not know: \{'hat': 1\}"):
        load_data(unknown, TAXONOMY)


def test_a_manifest_file_that_is_not_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text('{"entries": []}')
    with pytest.raises(DataError, match="not a split manifest"):
        load_data(tmp_path / "m.json", TAXONOMY)
    assert Manifest.model_fields["entries"].is_required()
