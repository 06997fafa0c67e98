#!/usr/bin/env bash
# The whole Fashion-MNIST study (experiments/ablation.py) on one GPU machine within a time limit.
#
#   DATA=DIR OUT=DIR JOBS=18 DEADLINE=540 bash experiments/gpu_study.sh
#
# DATA holds the four Fashion-MNIST idx files (gzip or not); they are put where the study
# expects them (/usr/share/datasets/fashion-mnist, Debian's path), because the data root is part
# of the study's settings. Runs go JOBS at a time (each its own process, compiled, batches
# augmented on the GPU); any still
# going at DEADLINE seconds is stopped at its last checkpoint. OUT receives the finished runs'
# result files, every log, the GPU's name, and the work folder's small files and the
# teacher's weights (every last.pt is 10 MB: too much to bring back), so that a rerun elsewhere
# distils from the same teacher; unfinished runs there start over.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT}" "${DATA:=.data/fashion-mnist}" "${JOBS:=18}" "${DEADLINE:=540}"
TARGET=/usr/share/datasets/fashion-mnist
if [ "$(realpath "$DATA")" != "$TARGET" ]; then
    mkdir -p "$TARGET" && cp "$DATA"/*-ubyte* "$TARGET"/
fi
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
nproc >> "$OUT/gpu.txt"
python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__)" \
    | tee -a "$OUT/gpu.txt"
python3 experiments/ablation.py --device "${DEVICE:-cuda}" --compile --jobs "$JOBS" --threads 1 \
    --deadline-s "$DEADLINE" --stagger-s "${STAGGER:-90}" --no-report ${EXTRA:-} 2>&1 | tee "$OUT/study.log"
rc=${PIPESTATUS[0]}
tar czf "$OUT/results.tgz" docs/results/runs
tar czf "$OUT/logs.tgz" runs/fashion_mnist/logs $(find runs/fashion_mnist -name train.log)
{ find runs/fashion_mnist/runs -type f ! -name '*.pt' ! -name '*.safetensors' ! -path '*tensorboard*'
  ls runs/fashion_mnist/runs/wavemlp_fp/seed0/step1/model.safetensors; } > /tmp/work_files
tar czf "$OUT/work.tgz" -T /tmp/work_files
ls -la "$OUT"
exit "$rc"
