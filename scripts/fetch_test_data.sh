#!/usr/bin/env bash
# Puts the real, labelled test data the tests need into .data/ (git-ignored), from Debian's
# packages, without a system-wide install: `apt-get download` fetches each .deb as a file and
# `dpkg -x` unpacks it. Nothing is committed; no model hub or data-set site is reached.
#
#   .data/photos/opencv/   OpenCV's sample photos (opencv-doc): people, fruit, buildings,
#                          documents, a car with its licence plate, ...
#   .data/photos/darknet/  darknet's sample photos (darknet): a dog with a bicycle and a truck,
#                          horses, a person, an eagle, ...
#   .data/fashion-mnist/   Fashion-MNIST (dataset-fashion-mnist, MIT): 70,000 labelled 28x28
#                          photos of 10 garment classes, the four idx files as shipped
# Each folder keeps its package's Debian copyright file (COPYRIGHT) beside the data.
#
# Idempotent: a folder that is already complete is kept.
# Usage: scripts/fetch_test_data.sh   (from anywhere; DATA_DIR overrides .data)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${DATA_DIR:-$ROOT/.data}"
STAMP="$DATA/.complete-v1"
[[ -f "$STAMP" ]] && { echo "test data ready: $DATA"; exit 0; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
PACKAGES=(opencv-doc darknet dataset-fashion-mnist)
# A machine whose package lists are missing or stale gets them refreshed once.
if ! apt-get download "${PACKAGES[@]}" >/dev/null 2>&1; then
    echo "apt-get download failed; running apt-get update once" >&2
    apt-get update >/dev/null
    apt-get download "${PACKAGES[@]}"
fi
for deb in ./*.deb; do dpkg -x "$deb" "$WORK/root"; done

rm -rf "$DATA/photos" "$DATA/fashion-mnist"
mkdir -p "$DATA/photos/opencv" "$DATA/photos/darknet" "$DATA/fashion-mnist"
# The photos only: OpenCV's examples/data also holds calibration boards and synthetic test
# patterns, which the tests pick from by name.
cp "$WORK/root/usr/share/doc/opencv-doc/examples/data/"*.{jpg,png} "$DATA/photos/opencv/"
cp "$WORK/root/usr/share/darknet/data/"*.jpg "$DATA/photos/darknet/"
cp "$WORK/root/usr/share/datasets/fashion-mnist/"*.gz "$DATA/fashion-mnist/"
cp "$WORK/root/usr/share/doc/opencv-doc/copyright" "$DATA/photos/opencv/COPYRIGHT"
cp "$WORK/root/usr/share/doc/darknet/copyright" "$DATA/photos/darknet/COPYRIGHT"
cp "$WORK/root/usr/share/doc/dataset-fashion-mnist/copyright" "$DATA/fashion-mnist/COPYRIGHT"
touch "$STAMP"
echo "test data ready: $DATA ($(find "$DATA/photos" -name "*.jpg" -o -name "*.png" | wc -l) photos, Fashion-MNIST)"
