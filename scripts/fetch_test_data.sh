#!/usr/bin/env bash
# Puts the real, labelled test data the tests need into .data/ (git-ignored), from Debian's
# packages, without a system-wide install: `apt-get download` fetches each .deb as a file and
# `dpkg -x` unpacks it. Nothing is committed; no model hub or data-set site is reached.
#
#   .data/photos/opencv/   OpenCV's sample photos (opencv-doc): people, fruit, buildings,
#                          documents, a car with its licence plate, ...
#   .data/photos/darknet/  darknet's sample photos (darknet): a dog with a bicycle and a truck,
#                          horses, a person, an eagle, ...
#   .data/photos/opencv-doc/  photos of OpenCV's tutorials (opencv-doc): two red buses, cars in a
#                          street, a square with people and a van far off
#   .data/photos/labelme/  labelme's examples (labelme-examples), PASCAL VOC 2011 photos: an
#                          orange bus with a car, people indoors, a cat, a dog
#   .data/photos/tuxpaint/ Tux Paint's vehicle stamps (tuxpaint-stamps-default): cut-out photos
#                          of a fire engine, a garbage truck, a pickup, a sedan, a Beetle, a
#                          minibus, a race car and a tractor tyre, on a transparent background
#   .data/photos/skimage/  scikit-image's sample photos (python3-skimage): a motorcycle, an
#                          astronaut, a coffee cup, a cat, a rocket
#   .data/fashion-mnist/   Fashion-MNIST (dataset-fashion-mnist, MIT): 70,000 labelled 28x28
#                          photos of 10 garment classes, the four idx files as shipped
# Each folder keeps its package's Debian copyright file (COPYRIGHT) beside the data.
#
# Idempotent: a folder that is already complete is kept.
# Usage: scripts/fetch_test_data.sh   (from anywhere; DATA_DIR overrides .data)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${DATA_DIR:-$ROOT/.data}"
STAMP="$DATA/.complete-v2"
[[ -f "$STAMP" ]] && { echo "test data ready: $DATA"; exit 0; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
PACKAGES=(opencv-doc darknet dataset-fashion-mnist labelme-examples python3-skimage)
# Tux Paint's stamps come as one 160 MB package: only its vehicle stamps are unpacked.
STAMPS=tuxpaint-stamps-default
# A machine whose package lists are missing or stale gets them refreshed once.
if ! apt-get download "${PACKAGES[@]}" "$STAMPS" >/dev/null 2>&1; then
    echo "apt-get download failed; running apt-get update once" >&2
    apt-get update >/dev/null
    apt-get download "${PACKAGES[@]}" "$STAMPS"
fi
for deb in ./*.deb; do
    [[ "$deb" == ./"$STAMPS"_* ]] && continue
    dpkg -x "$deb" "$WORK/root"
done
mkdir -p "$WORK/root"
dpkg-deb --fsys-tarfile ./"$STAMPS"_*.deb | tar -x -C "$WORK/root" \
    ./usr/share/tuxpaint/stamps/vehicles ./usr/share/doc/"$STAMPS"/copyright

rm -rf "$DATA/photos" "$DATA/fashion-mnist"
mkdir -p "$DATA/photos/"{opencv,darknet,opencv-doc,labelme,tuxpaint,skimage} "$DATA/fashion-mnist"
# The photos only: OpenCV's examples/data also holds calibration boards and synthetic test
# patterns, which the tests pick from by name.
cp "$WORK/root/usr/share/doc/opencv-doc/examples/data/"*.{jpg,png} "$DATA/photos/opencv/"
cp "$WORK/root/usr/share/darknet/data/"*.jpg "$DATA/photos/darknet/"
cp "$WORK/root/usr/share/datasets/fashion-mnist/"*.gz "$DATA/fashion-mnist/"
# The real vehicle photos (and a few without one) that the vehicle gate's threshold is chosen on.
HTML="$WORK/root/usr/share/doc/opencv-doc/opencv4/html"
cp "$HTML/"{pexels_double_decker_bus,bus_det,motion_original,Background_Subtraction_Tutorial_frame}.jpg \
    "$DATA/photos/opencv-doc/"
LABELME="$WORK/root/usr/share/doc/labelme-examples/examples"
cp "$LABELME/semantic_segmentation/data_annotated/"2011_0000{03,06,25}.jpg \
    "$LABELME/classification/data_annotated/"000{1,2}.jpg "$DATA/photos/labelme/"
VEHICLES="$WORK/root/usr/share/tuxpaint/stamps/vehicles"
cp "$VEHICLES/"{emergency/firetruck,garbagetruck,auto/truck,auto/sedan,auto/beetle}.png \
    "$VEHICLES/"{masstransit/green_korean_bus,race/indycar,wheel_tractor}.png "$DATA/photos/tuxpaint/"
SKIMAGE="$WORK/root/usr/lib/python3/dist-packages/skimage/data"
cp "$SKIMAGE/"{motorcycle_left,astronaut,coffee,chelsea}.png "$SKIMAGE/rocket.jpg" "$DATA/photos/skimage/"
cp "$WORK/root/usr/share/doc/opencv-doc/copyright" "$DATA/photos/opencv/COPYRIGHT"
cp "$WORK/root/usr/share/doc/darknet/copyright" "$DATA/photos/darknet/COPYRIGHT"
cp "$WORK/root/usr/share/doc/dataset-fashion-mnist/copyright" "$DATA/fashion-mnist/COPYRIGHT"
cp "$WORK/root/usr/share/doc/opencv-doc/copyright" "$DATA/photos/opencv-doc/COPYRIGHT"
cp "$WORK/root/usr/share/doc/labelme-examples/copyright" "$DATA/photos/labelme/COPYRIGHT"
cp "$WORK/root/usr/share/doc/$STAMPS/copyright" "$DATA/photos/tuxpaint/COPYRIGHT"
cp "$WORK/root/usr/share/doc/python3-skimage/copyright" "$DATA/photos/skimage/COPYRIGHT"
touch "$STAMP"
echo "test data ready: $DATA ($(find "$DATA/photos" -name "*.jpg" -o -name "*.png" | wc -l) photos, Fashion-MNIST)"
