#!/usr/bin/env bash
# Issue 18's GPU figures in one device call, from the repository root on the GPU machine,
# with .gpu/ (`make gpu-kit`) carried:
#   run(command="bash benchmarks/gpu_flow.sh", carry=[".gpu"], timeout_s=540)
# Unpacks OpenCV contrib into /tmp/site, then runs benchmarks/bench_flow.py: TV-L1 and
# seed 004's pair preparation, OpenCV on one thread and on all threads against torch on
# CUDA at batches 1, 16, 64 and 256, with the difference of each to OpenCV. Output in
# $OUT/bench_flow.txt. BENCH_ARGS overrides the benchmark's arguments; PY the python.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_flow_out}
PY=${PY:-python3}
mkdir -p "$OUT" /tmp/site
tar xJf .gpu/cv2.tar.xz -C /tmp/site || exit 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
fi
$PY -c "import cv2, torch; print('cv2', cv2.__version__, 'from', cv2.__file__, '| torch', torch.__version__, '| cuda', torch.cuda.is_available())" || exit 1
# shellcheck disable=SC2086
$PY benchmarks/bench_flow.py --video .gpu/single_face.mp4 ${BENCH_ARGS:---no-torch-cpu --sizes 1 16 64 256 --pairs 16} 2>&1 | tee "$OUT/bench_flow.txt"
