#!/usr/bin/env bash
# The GPU rows of BENCHMARKS.md, in one command on a machine with an NVIDIA GPU and PyTorch but
# possibly nothing else of ours (no uv, no Ray, no internet), e.g. the lent machine of the device tool:
#
#   bash benchmarks/on_gpu.sh [speed|compile|packing|all]     (default: all; BENCHMARKS.md is appended)
#
# speed:   benchmarks.train_speed, every method, fp32 and bf16, whole epochs on a 2-actor RAVDESS-size set whose
#          recordings repeat to 1,440 clips (generating all 24 actors takes about 30 minutes on 2 cores)
# compile: the same for gated and xattn under torch.compile
# packing: benchmarks.packing --runner processes (1, 2, 4, 8 trials sharing the GPU; Ray's wheel is too
#          large to carry there, see benchmarks/packing.py)
#
# Python packages the machine lacks travel as wheels in .whl/ (installed into /tmp/site first); the
# GPU image of the device tool has torch, torchvision, torchaudio, numpy, pyarrow, pandas, opencv and
# tqdm, and lacks PyAV: from the repository root, once,
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 -d .whl av==18.1.0
# then run this with `.whl` carried. Where $OUT is set (the device tool), BENCHMARKS.md is copied there.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 EMO_CACHE_DIR="${EMO_CACHE_DIR:-/tmp/emo-cache}"
py=python3
command -v uv >/dev/null && [ -f uv.lock ] && py="uv run python"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

case "$what" in speed | all)
    $py -m benchmarks.train_speed --actors 2 --precisions fp32 bf16 ;;
esac
case "$what" in compile | all)
    $py -m benchmarks.train_speed --actors 2 --methods gated xattn --precisions bf16 --compile ;;
esac
case "$what" in packing | all)
    $py -m benchmarks.packing --runner processes --share 1 2 4 8 ;;
esac
if [ -n "${OUT:-}" ]; then cp BENCHMARKS.md "$OUT/"; fi
