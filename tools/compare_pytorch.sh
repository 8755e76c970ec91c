#!/usr/bin/env bash
# The training step of sn-wgpu and the same step in PyTorch, timed back to back in one run on this
# machine, with the ratios: the numbers behind the speed tables of docs/benchmarks.md.
#
#   bash tools/compare_pytorch.sh                         # the workloads of docs/benchmarks.md for DEVICE
#   bash tools/compare_pytorch.sh soundnet8:1:20 soundnet5:4:10   # model:batch:seconds ...
#
# sn-wgpu runs on the adapter `sn-wgpu info` chooses (set WGPU_BACKEND / SN_WGPU_ADAPTER to pick
# another), with the kernels measured fastest there (`sn-wgpu tune`, run first); its time per step
# is the wall time of one submitted step, submission to completion, from `sn-wgpu profile`.
# PyTorch runs tools/time_pytorch.py on the CPU, or on CUDA with DEVICE=cuda, twice: with its
# defaults (what a PyTorch user gets: TF32 convolutions on CUDA) and in strict float32 (what
# sn-wgpu computes). On the CPU the two are the same computation and it runs once. Both use
# THREADS CPU threads (default: every core): lavapipe through LP_NUM_THREADS, PyTorch through
# torch.set_num_threads. STEPS timed steps each (default 3) after one warm-up. A batch sn-wgpu's
# memory plan refuses on the adapter is listed as not fitting. Needs Python 3 with torch.
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
  if [ "$device" = cpu ]; then
    set -- soundnet8:1:20 soundnet8:4:20 soundnet8:8:10 soundnet5:1:20 soundnet5:8:10
  else
    set -- soundnet8:1:20 soundnet8:8:20 soundnet8:32:20 soundnet8:64:20 soundnet5:1:20 soundnet5:8:20
  fi
fi
python3 -c "import torch" 2>/dev/null || { echo "compare_pytorch.sh: needs PyTorch (pip install torch)" >&2; exit 1; }
cargo build --release --quiet
bin=target/release/sn-wgpu

pytorch_ms() { # model batch seconds precision
  python3 tools/time_pytorch.py --model "$1" --batch "$2" --seconds "$3" --steps "$steps" \
    --device "$device" --threads "$threads" --precision "$4" | sed -n 's/^\([0-9.]*\) ms per step.*/\1/p'
}
ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }

adapter=$("$bin" info | sed -n 's/^chosen: //p')
echo "sn-wgpu on ${adapter}; PyTorch $(python3 -c 'import torch; print(torch.__version__)') on ${device}; ${threads} CPU threads; ${steps} steps each"
if [ "$device" = cpu ]; then
  echo "PyTorch's default on the CPU is strict float32: one PyTorch column"
  printf '%-12s %6s %8s | %12s | %16s %8s\n' model batch seconds "sn-wgpu ms" "PyTorch fp32 ms" ratio
else
  printf '%-12s %6s %8s | %12s | %19s %8s | %16s %8s\n' model batch seconds "sn-wgpu ms" \
    "PyTorch default ms" ratio "PyTorch fp32 ms" ratio
fi
for workload in "$@"; do
  IFS=: read -r model batch seconds <<<"$workload"
  "$bin" tune --model "$model" --batch-size "$batch" --seconds "$seconds" >/dev/null 2>&1 || true
  if ! out=$("$bin" profile --model "$model" --batch-size "$batch" --seconds "$seconds" --steps "$steps" --warmup 1 2>&1); then
    printf '%-12s %6s %8s | does not fit: %s\n' "$model" "$batch" "$seconds" "$(echo "$out" | tail -1 | cut -c1-100)"
    continue
  fi
  sn=$(echo "$out" | sed -n 's/^wall: *\([0-9.]*\) ms per step.*/\1/p')
  fp32=$(pytorch_ms "$model" "$batch" "$seconds" fp32)
  if [ "$device" = cpu ]; then
    printf '%-12s %6s %8s | %12s | %16s %8s\n' "$model" "$batch" "$seconds" "$sn" "$fp32" "$(ratio "$sn" "$fp32")"
  else
    default=$(pytorch_ms "$model" "$batch" "$seconds" tf32)
    printf '%-12s %6s %8s | %12s | %19s %8s | %16s %8s\n' "$model" "$batch" "$seconds" "$sn" \
      "$default" "$(ratio "$sn" "$default")" "$fp32" "$(ratio "$sn" "$fp32")"
  fi
done
