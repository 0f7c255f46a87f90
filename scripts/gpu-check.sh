#!/usr/bin/env bash
# The checks that need a CUDA device: the gpu-marked tests, then training and encoder throughput on the GPU.
# Run from the repository root on a GPU machine with the project's dependencies importable:
#     bash scripts/gpu-check.sh [OUT_DIR]      (logs go to OUT_DIR, default out/gpu-check)
set -uo pipefail
PY=${PYTHON:-python3}
out=${1:-out/gpu-check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
export PYTHONPATH=".:proto${PYTHONPATH:+:$PYTHONPATH}"  # works from a checkout without installing

$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print('torch', torch.__version__, 'on', torch.cuda.get_device_name())" || exit 1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

rc=0
$PY -m pytest -m gpu tests/gpu -p no:cacheprovider -q 2>&1 | tee "$out/tests.log" || rc=1
# ViT-B/32-shaped random CLIPs: the speed of FashionCLIP-sized models; the weights don't matter for speed.
$PY benchmarks/training_throughput.py --size vit-b32 --batch 256 --steps 10 2>&1 | tee "$out/training.txt" || rc=1
for modality in image text; do
    $PY benchmarks/encoder_service.py --size vit-b32 --device cuda --modality "$modality" --max-batch 64 \
        --clients 1 8 64 --threads 4 --seconds 4 2>&1 | tee "$out/encoder-$modality.txt" || rc=1
done
exit $rc
