#!/usr/bin/env bash
# The training step of sn-wgpu and the same step in PyTorch, timed back to back in one run on this
# machine, with the ratio: the numbers behind the README's speed table.
#
#   bash tools/compare_pytorch.sh                         # the README's three workloads
#   bash tools/compare_pytorch.sh soundnet8:1:20 soundnet5:4:10   # model:batch:seconds ...
#
# sn-wgpu runs on the adapter `sn-wgpu info` chooses (set WGPU_BACKEND / SN_WGPU_ADAPTER to pick
# another); its time per step is the wall time of one submitted step, submission to completion,
# from `sn-wgpu profile`. PyTorch runs tools/time_pytorch.py on the CPU, or on CUDA with
# DEVICE=cuda. Both use THREADS CPU threads (default: every core): lavapipe through LP_NUM_THREADS,
# PyTorch through torch.set_num_threads. STEPS timed steps each (default 3) after one warm-up.
# Needs Python 3 with torch (pip install torch).
set -euo pipefail
cd "$(dirname "$0")/.."

threads=${THREADS:-$(nproc)}
steps=${STEPS:-3}
device=${DEVICE:-cpu}
export LP_NUM_THREADS=$threads
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR="/tmp/xdg-runtime-$(id -u)"
  mkdir -p -m 700 "$XDG_RUNTIME_DIR"
fi
if [ $# -eq 0 ]; then
  set -- soundnet8:1:20 soundnet8:8:10 soundnet5:1:20
fi
python3 -c "import torch" 2>/dev/null || { echo "compare_pytorch.sh: needs PyTorch (pip install torch)" >&2; exit 1; }
cargo build --release --quiet
bin=target/release/sn-wgpu

adapter=$("$bin" info | sed -n 's/^chosen: //p')
echo "sn-wgpu on ${adapter}; PyTorch $(python3 -c 'import torch; print(torch.__version__)') on ${device}; ${threads} CPU threads; ${steps} steps each"
printf '%-12s %6s %8s | %14s %14s | %12s\n' model batch seconds "sn-wgpu ms" "PyTorch ms" "sn/PyTorch"
for workload in "$@"; do
  IFS=: read -r model batch seconds <<<"$workload"
  sn=$("$bin" profile --model "$model" --batch-size "$batch" --seconds "$seconds" --steps "$steps" --warmup 1 \
    | sed -n 's/^wall: *\([0-9.]*\) ms per step.*/\1/p')
  pt=$(python3 tools/time_pytorch.py --model "$model" --batch "$batch" --seconds "$seconds" --steps "$steps" \
    --device "$device" --threads "$threads" | sed -n 's/^\([0-9.]*\) ms per step.*/\1/p')
  ratio=$(python3 -c "print(f'{$sn / $pt:.2f}x')")
  printf '%-12s %6s %8s | %14s %14s | %12s\n' "$model" "$batch" "$seconds" "$sn" "$pt" "$ratio"
done
