#!/usr/bin/env bash
# One-shot GPU check (device tool): H36M training with the h36m_gpu preset on a frame-subsampled
# copy of the real training subjects (S8 held out), then held-out evaluation at N = 1 and 10.
# Usage: benchmarks/gpu_h36m.sh DATA_DIR OUT_DIR [MAX_MINUTES] [extra --set overrides...]
set -euo pipefail
data_dir=$1; out=$2; minutes=${3:-3.5}; shift 3 || true
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
t0=$(date +%s)
python3 -m diffupose prepare --dataset h36m --data-dir "$data_dir" --keypoints gt --val-subjects S8 \
    --out /tmp/h36m.npz | tail -c 400
echo "prepare: $(( $(date +%s) - t0 )) s"
python3 -m diffupose train --data /tmp/h36m.npz --out /tmp/run_h36m --preset h36m_gpu \
    --set train.max_minutes="$minutes" "$@" --no-progress 2>&1 | tail -n 25
echo "train done: $(( $(date +%s) - t0 )) s"
for n in 1 10; do
  python3 -m diffupose evaluate --run /tmp/run_h36m --data /tmp/h36m.npz --split val \
      --checkpoint ema --hypotheses $n --sampler ddim --steps 5 --flip --max-samples "${EVAL_MAX:-0}" \
      --json "$out/eval_val_n$n.json" | tail -n 12   # ema: best was chosen on val
done
echo "eval done: $(( $(date +%s) - t0 )) s"
cp /tmp/run_h36m/history.jsonl /tmp/run_h36m/config.json "$out/"
best=/tmp/run_h36m/checkpoint/best; [ -d "$best" ] || best=/tmp/run_h36m/checkpoint/latest
cp "$best/ema.safetensors" "$out/" && cp "$best/config.json" "$out/ckpt_config.json" || true
