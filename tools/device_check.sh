#!/usr/bin/env bash
# The GPU check in one shot: everything worth measuring on a GPU machine, built on a development
# machine, copied there as one bundle and run in one go, with one Markdown report as the result.
#
# On the development machine (x86-64, with the Rust toolchain and apt), once:
#   bash tools/device_check.sh --build            # writes device-bundle/ (git-ignored, < 64 MiB)
# Copy the repository with device-bundle/ to the GPU machine (Linux, NVIDIA GPU, PyTorch with
# CUDA; it needs no network and no Rust), and from the repository root there:
#   bash tools/device_check.sh                    # report in $OUT/device_report.md (or ./device_report.md)
# Rehearse on any adapter (lavapipe included) with --quick: small workloads, same steps.
#
# The bundle holds the release binary, the train_step bench binary, tools/time_pytorch.py and the
# Debian packages of the Vulkan loader (libvulkan1, and the GL dispatch libraries NVIDIA's driver
# library needs), which GPU machines without a desktop often lack: the run unpacks them into a
# temporary folder when `ldconfig` finds no libvulkan.so.1, and, when the loader then finds no GPU
# driver, points VK_DRIVER_FILES at NVIDIA's ICD.
#
# The report: `sn-wgpu info`; `sn-wgpu selftest` (every kernel against its f64 reference and a
# training step against the PyTorch fixture, on this GPU); `sn-wgpu tune` at every workload (the
# kernel of each conv pass measured on this GPU; the choices are written beside the report as
# kernel-choices.json); `sn-wgpu profile` of a SoundNet-8 training step at batch 32 x 20 s with
# each --conv-kernel choice (auto = measured, tiled, plain, cpu); the default kernels at every
# workload (SoundNet-8 at batch 1, 8, 32 and 64 x 20 s, SoundNet-5 at 1 and 8); the train_step
# bench; the loader bench (packed shards, WAV, and FLAC and MP3 where sox is installed) and a
# training run on its pack at the big workload, which says how long the steps waited for data;
# tools/time_pytorch.py on CUDA at the same workloads with PyTorch's defaults (TF32
# convolutions), strict float32 and bf16 autocast; and the ratios. Last, the gpu blocks of
# docs/benchmarks.md rerun by tools/record.py into a copy beside the report, to put in the
# repository. Each part has a time limit; the whole stays under 8 minutes on an H100 or H200.
set -uo pipefail
cd "$(dirname "$0")/.."
bundle=${BUNDLE:-device-bundle}

if [ "${1:-}" = "--build" ]; then
  set -e
  rm -rf "$bundle" && mkdir -p "$bundle"
  cargo build --release --quiet
  bench_binary() { # NAME -> the path of that bench's executable
    cargo bench --bench "$1" --no-run --message-format=json 2>/dev/null | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$1" | tail -n 1
  }
  cp target/release/sn-wgpu "$bundle/"
  cp "$(bench_binary train_step)" "$bundle/train_step"
  cp "$(bench_binary loader)" "$bundle/loader"
  cp tools/time_pytorch.py "$bundle/"
  # The Vulkan loader, and the GL dispatch libraries NVIDIA's Vulkan driver library links against.
  (cd "$bundle" && apt-get download -o APT::Architecture=amd64 \
    libvulkan1 libglvnd0 libegl1 libgl1 libglx0 libgles2 libopengl0 >/dev/null 2>&1) \
    || echo "device_check.sh: could not download the Vulkan loader packages (apt-get download)" >&2
  strip "$bundle/sn-wgpu" "$bundle/train_step" "$bundle/loader" 2>/dev/null || true
  du -sh "$bundle"
  ls -l "$bundle"
  echo "copy the repository with '$bundle' to the GPU machine and run there: bash tools/device_check.sh"
  exit 0
fi

quick=0
[ "${1:-}" = "--quick" ] && quick=1
out_dir=${OUT:-.}
report="$out_dir/device_report.md"
mkdir -p "$out_dir"
: > "$report"
bin="$bundle/sn-wgpu"
if [ ! -x "$bin" ]; then
  echo "device_check.sh: no $bin; build the bundle first: bash tools/device_check.sh --build" >&2
  exit 1
fi
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR="/tmp/xdg-runtime-$(id -u)"
  mkdir -p -m 700 "$XDG_RUNTIME_DIR"
fi

# The Vulkan loader, then a driver for it.
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1'; then
  for deb in "$bundle"/*.deb; do
    [ -f "$deb" ] && dpkg -x "$deb" /tmp/device-check-vulkan
  done
  export LD_LIBRARY_PATH="/tmp/device-check-vulkan/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
if ! "$bin" info 2>/dev/null | grep -q '^chosen:.*\(DiscreteGpu\|IntegratedGpu\)'; then
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
             /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$icd" ]; then
      export VK_DRIVER_FILES=$icd
      break
    fi
  done
fi

log() { printf '%s\n' "$@" >>"$report"; }
# section TITLE LIMIT_SECONDS COMMAND...: runs the command with a time limit, its output fenced in
# the report, and its wall time and exit status under it.
section() {
  local title=$1 limit=$2
  shift 2
  log "" "## $title" "" '```' "\$ $*"
  local start=$SECONDS status=0
  timeout "$limit" "$@" >>"$report" 2>&1 || status=$?
  log '```' "" "(${title}: $((SECONDS - start)) s, exit status $status)"
  echo "device_check.sh: $title: $((SECONDS - start)) s, exit status $status" >&2
}

if [ "$quick" = 1 ]; then
  workloads=(soundnet8-narrow4:1:10 soundnet8-narrow4:2:10 soundnet5-narrow4:1:10) big=soundnet8-narrow4:2:10 steps=1
else
  workloads=(soundnet8:1:20 soundnet8:8:20 soundnet8:32:20 soundnet8:64:20 soundnet5:1:20 soundnet5:8:20)
  big=soundnet8:32:20 steps=5
fi
export SN_WGPU_TUNE_CACHE="$out_dir/kernel-choices.json"

log "# sn-wgpu device check" "" "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m), $(nproc) CPU cores."
command -v nvidia-smi >/dev/null && log "" '```' "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1)" '```'
log "" "Vulkan loader: ${LD_LIBRARY_PATH:+unpacked from the bundle; }driver files: ${VK_DRIVER_FILES:-as the loader finds them}."
log "Workloads (model:batch:seconds): ${workloads[*]}; $steps timed steps each. Kernel choices: $SN_WGPU_TUNE_CACHE."

section "sn-wgpu info" 30 "$bin" info
section "sn-wgpu selftest" 90 "$bin" selftest
for w in "${workloads[@]}"; do
  IFS=: read -r model batch seconds <<<"$w"
  section "tune, $model batch $batch x $seconds s" 60 "$bin" tune --model "$model" --batch-size "$batch" --seconds "$seconds"
done
IFS=: read -r model batch seconds <<<"$big"
for kernel in auto tiled plain cpu; do
  section "profile, --conv-kernel $kernel, $model batch $batch x $seconds s" 45 \
    "$bin" profile --model "$model" --batch-size "$batch" --seconds "$seconds" --steps "$steps" --conv-kernel "$kernel" --sort time
done
declare -A sn_ms pt_default pt_fp32 pt_bf16
for w in "${workloads[@]}"; do
  IFS=: read -r model batch seconds <<<"$w"
  section "profile, measured kernels, $model batch $batch x $seconds s" 45 \
    "$bin" profile --model "$model" --batch-size "$batch" --seconds "$seconds" --steps "$steps"
  sn_ms[$w]=$(tac "$report" | grep -m1 '^wall:' | sed 's/^wall: *\([0-9.]*\) ms.*/\1/')
done
IFS=: read -r model batch seconds <<<"$big"
bench_batches=$(printf '%s\n' 1 8 "$batch" | sort -nu | paste -sd, -)
section "train_step bench, $model batches $bench_batches" 90 \
  env SN_BENCH_MODEL="$model" SN_BENCH_SECONDS="$seconds" SN_BENCH_BATCHES="$bench_batches" "$bundle/train_step" --bench

# The data path beside the step: what the loader serves per format and core count, then a run
# whose steps read packed shards, with its wait for data against its wall time.
loader_data=$(mktemp -d)
section "loader bench, $seconds s x $batch" 120 \
  env SN_BENCH_CLIPS=128 SN_BENCH_SECONDS="$seconds" SN_BENCH_BATCH="$batch" SN_BENCH_KEEP="$loader_data/data" \
  "$bundle/loader" --bench
section "train on packed shards, $model batch $batch x $seconds s" 120 \
  "$bin" train --data "$loader_data/data/pack" --out "$loader_data/run" --model "$model" --batch-size "$batch" \
  --seconds "$seconds" --steps $((steps * 8)) --save-every 0
rm -rf "$loader_data"

device=cpu
python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null && device=cuda
pytorch() { # workload precision -> ms per step, its output in the report
  local model batch seconds
  IFS=: read -r model batch seconds <<<"$1"
  section "PyTorch ($device, $2), $model batch $batch x $seconds s" 45 \
    python3 "$bundle/time_pytorch.py" --model "$model" --batch "$batch" --seconds "$seconds" --steps "$steps" \
    --device "$device" --precision "$2"
}
last_pt() { tac "$report" | grep -m1 ' ms per step (mean' | sed 's/^\([0-9.]*\) ms per step.*/\1/'; }
for w in "${workloads[@]}"; do
  pytorch "$w" tf32 && pt_default[$w]=$(last_pt)
  pytorch "$w" fp32 && pt_fp32[$w]=$(last_pt)
  pytorch "$w" bf16 && pt_bf16[$w]=$(last_pt)
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
log "" "## sn-wgpu (float32, measured kernels) against PyTorch ($device)" "" \
  "PyTorch default: TF32 convolutions on CUDA (torch.backends.cudnn.allow_tf32, on by default); fp32: TF32 off; bf16: autocast." "" \
  "| model | batch | seconds | sn-wgpu ms/step | PyTorch default | sn / default | PyTorch fp32 | sn / fp32 | PyTorch bf16 |" \
  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for w in "${workloads[@]}"; do
  IFS=: read -r model batch seconds <<<"$w"
  sn=${sn_ms[$w]:-} d=${pt_default[$w]:-} f=${pt_fp32[$w]:-} b=${pt_bf16[$w]:-}
  log "| $model | $batch | $seconds | ${sn:-n/a} | ${d:-n/a} | $(ratio "$sn" "$d") | ${f:-n/a} | $(ratio "$sn" "$f") | ${b:-n/a} |"
done

# The gpu blocks of docs/benchmarks.md, measured again here and written into a copy of it beside
# the report (this machine's copy of the repository is left as it is).
if [ "$quick" = 0 ]; then
  cp docs/benchmarks.md "$out_dir/benchmarks.md"
  start=$SECONDS status=0
  SN_WGPU_BIN="$bin" timeout 200 python3 tools/record.py "$out_dir/benchmarks.md" >>"$report" 2>&1 || status=$?
  log "" "(tools/record.py, the gpu blocks of docs/benchmarks.md into $out_dir/benchmarks.md: $((SECONDS - start)) s, exit status $status)"
fi
echo "device_check.sh: report in $report ($SECONDS s)" >&2
