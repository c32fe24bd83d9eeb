"""Labelled photos → a seeded, stratified train / val / test split, written as a manifest.

Input is an image folder ``DATA/<class_id>/*.{jpg,jpeg,png,webp}`` or a CSV file with the
columns ``path,class_id[,vin]`` (paths relative to the CSV's folder, or absolute). Class ids
are the taxonomy's (``service/core/data/taxonomy.yaml`` by default); an id the taxonomy does
not know is an error that names it.

The split follows the thesis (Grundmann 2023, section 4.3): 85 % train, 7.5 % validation,
7.5 % test, stratified per class, and classes with fewer than 25 images are reported and left
out (too few for the validation and test sets to hold any). Exact duplicates (same sha256 of
the file's bytes) are grouped before the split, so every copy lands in the same split and no
photo is both trained on and tested on; a duplicate group whose copies carry different labels
is reported and left out.

The manifest (JSON) is what every later step reads (`recognize train`, `evaluate`,
`calibrate` take it as ``--data``), so they all see the same split; its ``sha256`` (over the
entries, seed and fractions) goes into a calibration's certificate.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from service.core.taxonomy import Taxonomy

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.85, 0.075, 0.075)
MIN_IMAGES_PER_CLASS = 25  # the thesis' cut-off for including a class (section 4.2.1)
MANIFEST_FORMAT = 1


class DataError(Exception):
    """The labelled data cannot be read or split; the message says what is wrong."""


class Entry(BaseModel):
    """One photo of the manifest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(description="relative to the manifest's root (or absolute)")
    class_id: str
    split: str
    sha256: str
    vin: str | None = None


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: int = MANIFEST_FORMAT
    created: str
    root: str = Field(description="folder the entries' paths are relative to")
    source: str = Field(description="the image folder or CSV file the manifest was made from")
    taxonomy_version: str
    seed: int
    fractions: tuple[float, float, float]
    min_images_per_class: int
    counts: dict[str, dict[str, int]] = Field(description="class id -> split -> images")
    excluded_classes: dict[str, int] = Field(
        description="taxonomy classes left out: class id -> images found (under the minimum)"
    )
    duplicate_groups: list[list[str]] = Field(
        description="paths of files with the same content; each group is kept in one split"
    )
    conflicting_duplicates: list[list[str]] = Field(
        description="same content, different labels: left out"
    )
    entries: tuple[Entry, ...]

    @property
    def sha256(self) -> str:
        """Digest of what defines the split: the entries, seed and fractions."""
        body = json.dumps(
            {
                "entries": [e.model_dump() for e in self.entries],
                "seed": self.seed,
                "fractions": self.fractions,
            },
            sort_keys=True,
        )
        return hashlib.sha256(body.encode()).hexdigest()

    def split(self, name: str) -> list[Entry]:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r} (choose from {', '.join(SPLITS)})")
        return [e for e in self.entries if e.split == name]

    def path_of(self, entry: Entry) -> Path:
        return Path(self.root) / entry.path

    def check_taxonomy(self, taxonomy: Taxonomy) -> None:
        """Refuse a manifest made for another taxonomy, or naming a class it lacks."""
        if self.taxonomy_version != taxonomy.version:
            raise DataError(
                f"the manifest was made for taxonomy {self.taxonomy_version!r}, not "
                f"{taxonomy.version!r} (pass the --taxonomy it was made with)"
            )
        unknown = sorted({e.class_id for e in self.entries} - taxonomy.by_id().keys())
        if unknown:
            raise DataError(f"the manifest names classes the taxonomy lacks: {unknown[:5]}")

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=1) + "\n", encoding="utf-8")

    def summary(self) -> str:
        """A few lines for the console: sizes, exclusions, duplicates."""
        sizes = Counter(e.split for e in self.entries)
        lines = [
            f"split (seed {self.seed}): "
            + ", ".join(f"{s} {sizes.get(s, 0)}" for s in SPLITS)
            + f" photos of {len(self.counts)} classes"
        ]
        if self.excluded_classes:
            left_out = ", ".join(f"{c} ({n})" for c, n in sorted(self.excluded_classes.items()))
            lines.append(
                f"left out (under {self.min_images_per_class} images): {left_out}"
            )
        if self.duplicate_groups:
            copies = sum(len(g) - 1 for g in self.duplicate_groups)
            lines.append(
                f"exact duplicates: {len(self.duplicate_groups)} groups ({copies} extra copies), "
                "each kept in one split"
            )
        if self.conflicting_duplicates:
            lines.append(
                f"left out: {len(self.conflicting_duplicates)} duplicate groups with "
                f"different labels, e.g. {self.conflicting_duplicates[0][:2]}"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class Sample:
    path: Path
    class_id: str
    vin: str | None = None


def scan_folder(root: Path) -> list[Sample]:
    """Every image under ``root/<class_id>/`` (one level; other files are ignored)."""
    samples = [
        Sample(path, folder.name)
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
        for path in sorted(folder.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    ]
    if not samples:
        raise DataError(
            f"{root} holds no images in class folders ({root}/<class_id>/*.jpg|png|webp)"
        )
    return samples


def read_csv(path: Path) -> list[Sample]:
    """The rows of a ``path,class_id[,vin]`` CSV file (with that header)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "class_id"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(
                f"{path} needs a header with the columns path,class_id[,vin] "
                f"(missing {sorted(missing)}; got {reader.fieldnames})"
            )
        rows = list(reader)
    samples = []
    for line, row in enumerate(rows, start=2):
        image = Path(row["path"])
        image = image if image.is_absolute() else path.parent / image
        if not image.is_file():
            raise DataError(f"{path} line {line}: image {image} does not exist")
        vin = (row.get("vin") or "").strip() or None
        samples.append(Sample(image, row["class_id"].strip(), vin))
    if not samples:
        raise DataError(f"{path} has no rows")
    return samples


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _allocate(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Groups per split for a class of n groups: val and test get at least one each."""
    n_val = max(1, round(n * fractions[1]))
    n_test = max(1, round(n * fractions[2]))
    return n - n_val - n_test, n_val, n_test


def make_manifest(
    samples: Iterable[Sample],
    taxonomy: Taxonomy,
    *,
    root: Path,
    source: str,
    seed: int = 0,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    min_images_per_class: int = MIN_IMAGES_PER_CLASS,
) -> Manifest:
    """Group duplicates, leave out small classes, and split each class with a seeded shuffle."""
    if abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) <= 0:
        raise DataError(f"split fractions must be positive and sum to 1 (got {fractions})")
    samples = list(samples)
    known = taxonomy.by_id()
    unknown = Counter(s.class_id for s in samples if s.class_id not in known)
    if unknown:
        raise DataError(
            f"class ids the taxonomy {taxonomy.version!r} does not know: "
            f"{dict(sorted(unknown.items())[:8])} (folder names or CSV class_id must be the "
            "taxonomy's ids; pass --taxonomy for another taxonomy)"
        )
    by_hash: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_hash[_digest(sample.path)].append(sample)

    def rel(path: Path) -> str:
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)

    groups: dict[str, list[tuple[str, list[Sample]]]] = defaultdict(list)
    conflicts, duplicates = [], []
    for digest, members in sorted(by_hash.items()):
        labels = {m.class_id for m in members}
        if len(labels) > 1:
            conflicts.append(sorted(rel(m.path) for m in members))
            continue
        if len(members) > 1:
            duplicates.append(sorted(rel(m.path) for m in members))
        groups[members[0].class_id].append((digest, members))

    rng = np.random.default_rng(seed)
    entries: list[Entry] = []
    counts: dict[str, dict[str, int]] = {}
    excluded: dict[str, int] = {}
    for cls in taxonomy.classes:  # taxonomy order: the same seed gives the same split
        class_groups = groups.get(cls.id, [])
        images = sum(len(m) for _, m in class_groups)
        if images < min_images_per_class:
            excluded[cls.id] = images
            continue
        order = rng.permutation(len(class_groups))
        n_train, n_val, _ = _allocate(len(class_groups), fractions)
        counts[cls.id] = dict.fromkeys(SPLITS, 0)
        for rank, index in enumerate(order):
            split = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
            digest, members = class_groups[index]
            for member in members:
                entries.append(Entry(
                    path=rel(member.path), class_id=cls.id, split=split, sha256=digest,
                    vin=member.vin,
                ))
                counts[cls.id][split] += 1
    if not entries:
        raise DataError(
            f"no class has {min_images_per_class} images or more: nothing to split "
            f"(found {dict(Counter(s.class_id for s in samples))})"
        )
    return Manifest(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        root=str(root),
        source=source,
        taxonomy_version=taxonomy.version,
        seed=seed,
        fractions=fractions,
        min_images_per_class=min_images_per_class,
        counts=counts,
        excluded_classes=excluded,
        duplicate_groups=duplicates,
        conflicting_duplicates=conflicts,
        entries=tuple(sorted(entries, key=lambda e: e.path)),
    )


def load_data(
    data: Path | str,
    taxonomy: Taxonomy,
    *,
    seed: int = 0,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    min_images_per_class: int = MIN_IMAGES_PER_CLASS,
) -> Manifest:
    """A manifest file as written, or a new split of an image folder or CSV file."""
    data = Path(data)
    if not data.exists():
        raise DataError(f"--data {data} does not exist")
    if data.is_file() and data.suffix == ".json":
        try:
            manifest = Manifest.model_validate_json(data.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise DataError(f"{data} is not a split manifest: {exc}") from exc
        manifest.check_taxonomy(taxonomy)
        return manifest
    if data.is_file():
        samples, root = read_csv(data), data.parent.absolute()
    else:
        samples, root = scan_folder(data), data.absolute()
    return make_manifest(
        [Sample(s.path.absolute(), s.class_id, s.vin) for s in samples],
        taxonomy,
        root=root,
        source=str(data),
        seed=seed,
        fractions=fractions,
        min_images_per_class=min_images_per_class,
    )
