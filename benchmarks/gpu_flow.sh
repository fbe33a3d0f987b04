#!/usr/bin/env bash
# Issue 18's GPU figures in one device call on a lent GPU machine, with .gpu/
# (`make gpu-kit`, run here first) carried:
#   run(command="bash benchmarks/gpu_flow.sh", carry=[".gpu"], timeout_s=420)
# (about 3 min expected; the limit leaves device time for a rerun). Unpacks OpenCV
# contrib into /tmp/site, then runs benchmarks/bench_flow.py: TV-L1 with OpenCV on one
# thread and on all threads against torch on CUDA at batches 1, 16, 64 and 256, with the
# end-point difference to OpenCV; then seed 004's pair preparation, numpy/OpenCV on one
# thread against torch on CUDA, with the pixels that differ. Output in
# $OUT/bench_flow.txt. BENCH_ARGS overrides the benchmark's arguments; PY the python.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-/tmp/gpu_flow_out}
PY=${PY:-python3}
if [ ! -f .gpu/cv2.tar.xz ] || [ ! -f .gpu/single_face.mp4 ]; then
    echo "gpu_flow.sh: .gpu/cv2.tar.xz or .gpu/single_face.mp4 missing: run 'make gpu-kit' here and carry .gpu" >&2
    exit 1
fi
mkdir -p "$OUT" /tmp/site
tar xJf .gpu/cv2.tar.xz -C /tmp/site || exit 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
fi
# what the benchmark imports, checked before any timing
$PY -c "import cv2, torch, products.micro, stages.flow_torch; cv2.optflow.DualTVL1OpticalFlow_create
print('cv2', cv2.__version__, 'from', cv2.__file__, '| torch', torch.__version__, '| cuda', torch.cuda.is_available())" || exit 1
# shellcheck disable=SC2086
$PY benchmarks/bench_flow.py --video .gpu/single_face.mp4 ${BENCH_ARGS:---no-torch-cpu --sizes 1 16 64 256 --pairs 16} 2>&1 | tee "$OUT/bench_flow.txt"
