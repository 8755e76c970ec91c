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
# memory plan refuses on the adapter is listed as not fitting. MARKDOWN=1 prints a Markdown table
# instead of aligned columns (what tools/record.py puts in docs/benchmarks.md). Needs Python 3 with
# torch. SN_WGPU_BIN names a built sn-wgpu to time instead of building the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."

threads=${THREADS:-$(nproc)}
steps=${STEPS:-3}
device=${DEVICE:-cpu}
markdown=${MARKDOWN:-0}
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
if [ -n "${SN_WGPU_BIN:-}" ]; then
  bin=$SN_WGPU_BIN
else
  cargo build --release --quiet
  bin=target/release/sn-wgpu
fi

pytorch_ms() { # model batch seconds precision
  python3 tools/time_pytorch.py --model "$1" --batch "$2" --seconds "$3" --steps "$steps" \
    --device "$device" --threads "$threads" --precision "$4" | sed -n 's/^\([0-9.]*\) ms per step.*/\1/p'
}
ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }

adapter=$("$bin" info | sed -n 's/^chosen: //p')
torch_version=$(python3 -c 'import torch; print(torch.__version__)')
# One row: cells separated by tabs, printed as aligned columns or as a Markdown table row.
row() {
  if [ "$markdown" = 1 ]; then
    echo "| $(printf '%s' "$1" | sed 's/\t/ | /g') |"
  else
    printf '%s\n' "$1" | awk -F'\t' '{ printf "%-12s %6s %8s", $1, $2, $3; for (i = 4; i <= NF; i++) printf " | %19s", $i; print "" }'
  fi
}
echo "sn-wgpu on ${adapter}; PyTorch ${torch_version} on ${device}; ${threads} CPU threads; ${steps} timed steps each after one warm-up"
if [ "$device" = cpu ]; then
  echo "PyTorch's default on the CPU is strict float32: one PyTorch column"
  header=$'model\tbatch\tseconds\tsn-wgpu ms\tPyTorch fp32 ms\tratio'
else
  header=$'model\tbatch\tseconds\tsn-wgpu ms\tPyTorch default (TF32) ms\tratio\tPyTorch fp32 ms\tratio'
fi
[ "$markdown" = 1 ] && echo
row "$header"
[ "$markdown" = 1 ] && row "$(printf '%s' "$header" | sed 's/[^\t]*/---/g')"
for workload in "$@"; do
  IFS=: read -r model batch seconds <<<"$workload"
  "$bin" tune --model "$model" --batch-size "$batch" --seconds "$seconds" >/dev/null 2>&1 || true
  if ! out=$("$bin" profile --model "$model" --batch-size "$batch" --seconds "$seconds" --steps "$steps" --warmup 1 2>&1); then
    row "$model"$'\t'"$batch"$'\t'"$seconds"$'\t'"does not fit: $(echo "$out" | grep -v '^ *[0-9]*: \|^ *at \|^Stack backtrace' | sed -n 's/^Error: //p' | head -1 | cut -c1-160)"
    continue
  fi
  sn=$(echo "$out" | sed -n 's/^wall: *\([0-9.]*\) ms per step.*/\1/p')
  fp32=$(pytorch_ms "$model" "$batch" "$seconds" fp32)
  if [ "$device" = cpu ]; then
    row "$model"$'\t'"$batch"$'\t'"$seconds"$'\t'"$sn"$'\t'"$fp32"$'\t'"$(ratio "$sn" "$fp32")"
  else
    default=$(pytorch_ms "$model" "$batch" "$seconds" tf32)
    row "$model"$'\t'"$batch"$'\t'"$seconds"$'\t'"$sn"$'\t'"$default"$'\t'"$(ratio "$sn" "$default")"$'\t'"$fp32"$'\t'"$(ratio "$sn" "$fp32")"
  fi
done
