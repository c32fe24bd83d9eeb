"""Fashion-MNIST as an image folder: real labelled photos to test the model tooling on.

Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, https://github.com/zalandoresearch/fashion-mnist,
MIT; Debian package ``dataset-fashion-mnist``, which ``make data`` unpacks into
``.data/fashion-mnist/``) holds 70,000 28x28 greyscale photos of 10 garment classes as four
gzipped idx files. This writes a seeded, class-balanced subset as JPEGs in the layout
`recognize train` reads (``OUT/<class_id>/<index>.jpg``), upscaled (bicubic) to ``--size``
pixels: the service refuses sides under 32 px. The class ids are those of
``examples/fashion-mnist/taxonomy.yaml``. Nothing is downloaded.

    python -m service.modeltools.fashion_mnist --source .data/fashion-mnist \\
        --part train --per-class 300 --size 64 --out .data/fmnist-train
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np
from PIL import Image

from service.core.vin._rules import VinRules

# Label order of the idx files (the data set's README).
CLASS_IDS = (
    "t_shirt_top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
)
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IDX_IMAGES, IDX_LABELS = 2051, 2049  # the idx format's magic numbers (unsigned bytes, 3 / 1 dims)


def read_idx(path: Path) -> np.ndarray:
    """An idx file (gzipped) as a uint8 array: [N, rows, cols] for images, [N] for labels."""
    data = gzip.decompress(path.read_bytes())
    magic = int.from_bytes(data[:4], "big")
    if magic not in (IDX_IMAGES, IDX_LABELS):
        raise ValueError(f"{path} is not an idx file of unsigned bytes (magic {magic})")
    dims = magic & 0xFF
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(source: Path, part: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images [N, 28, 28] and labels [N] of the ``train`` (60,000) or ``test`` (10,000) part."""
    images_file, labels_file = FILES[part]
    missing = [f for f in FILES[part] if not (source / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{source} lacks {missing}: run `make data` (scripts/fetch_test_data.sh)"
        )
    return read_idx(source / images_file), read_idx(source / labels_file)


def write_image_folder(
    source: Path,
    out: Path,
    *,
    part: str = "train",
    per_class: int = 300,
    size: int = 64,
    seed: int = 0,
    skip_per_class: int = 0,
) -> dict[str, int]:
    """Write ``per_class`` seeded photos of each class as ``out/<class_id>/<part>-<index>.jpg``;
    ``skip_per_class`` skips that many of each class's shuffled photos first (a disjoint
    second subset with the same seed). Returns photos written per class."""
    images, labels = load(source, part)
    rng = np.random.default_rng(seed)
    written = {}
    for label, class_id in enumerate(CLASS_IDS):
        chosen = rng.permutation(np.flatnonzero(labels == label))
        chosen = chosen[skip_per_class : skip_per_class + per_class]
        folder = out / class_id
        folder.mkdir(parents=True, exist_ok=True)
        for index in chosen:
            img = Image.fromarray(images[index], mode="L")
            img.resize((size, size), Image.Resampling.BICUBIC).save(
                folder / f"{part}-{index:05d}.jpg", quality=92
            )
        written[class_id] = len(chosen)
    return written


def vin_naming(rules: VinRules, parent: str, serial: int = 1) -> str:
    """A European-layout VIN that the rules decode to ``parent`` (for test requests): the
    first EU rule naming it, under its first WMI, body digit and position 10 = 1."""
    for rule in rules.eu:
        if rule.parent != parent:
            continue
        wmis = rule.wmi or [
            code for code, info in rules.wmi.items() if rule.vehicle in info.vehicles
        ]
        digit = rule.body_digits[0] if rule.body_digits else 0
        return f"{wmis[0]}{rule.series}{digit}00" + "1" + f"A{serial:06d}"
    raise ValueError(f"no EU rule of {rules.version!r} names parent {parent!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service.modeltools.fashion_mnist",
        description="Write a seeded, class-balanced subset of Fashion-MNIST as JPEG class folders.",
    )
    parser.add_argument(
        "--source", type=Path, default=Path(".data/fashion-mnist"),
        help="folder with the four idx .gz files (default: .data/fashion-mnist, `make data`)",
    )
    parser.add_argument("--out", type=Path, required=True, help="image folder to write")
    parser.add_argument("--part", choices=sorted(FILES), default="train", help="default: train")
    parser.add_argument("--per-class", type=int, default=300, help="photos per class (default 300)")
    parser.add_argument("--size", type=int, default=64, help="side in pixels (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="subset seed (default 0)")
    args = parser.parse_args(argv)
    written = write_image_folder(
        args.source, args.out, part=args.part, per_class=args.per_class, size=args.size,
        seed=args.seed,
    )
    print(f"{sum(written.values())} photos of {len(written)} classes in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
