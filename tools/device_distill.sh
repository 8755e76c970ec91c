#!/usr/bin/env bash
# The distillation experiment (tools/experiment_distill.sh) at GPU scale, for a GPU machine that has
# no Rust, no ffmpeg and no network. Everything it needs is built on a machine with the Rust
# toolchain and apt, in two parts of under 64 MiB each, for machines that take files in small
# copies: the teacher (55 MB) and the ESC-10 audio (85 MB) would not fit in one.
#
# On the build machine, once (writes device-distill/, git-ignored):
#   bash tools/device_distill.sh --pack
#     part1/: the release binary, the Vulkan loader's Debian packages, the teacher in float16
#             (27 MB; widened back to float32 on the GPU machine: each weight within 2^-11 of the
#             authors')
#     part2/: the ESC-10 audio as FLAC (lossless, 51 MB), meta.csv, and the wheels of soundfile
#             (with cffi and pycparser) that decode it for tools/mix_clips.py there
# Copy the repository with device-distill/part1 to the GPU machine and, from the repository root:
#   bash tools/device_distill.sh --stage
#   copies it to $KEEP (/tmp/sn-distill), unpacks the loader, runs `sn-wgpu info` and `selftest`.
# Then copy device-distill/part2 there too, and:
#   bash tools/device_distill.sh --run
#   decodes the audio, writes MIXES (20000) mixtures in JOBS (8) parallel shards (seeds 0..JOBS-1),
#   teaches ESC-10 and every shard, trains a MODEL (soundnet8) student (batch BATCH (32) x 10 s, lr
#   0.001: experiment_distill.sh's settings but larger batches) until DEADLINE (420) seconds after
#   the start (SIGTERM: the trainer saves and stops), and writes to $OUT (default $KEEP/out) the
#   student's weights (no Adam moments) in 15 MiB pieces, its loss curve and logs.tgz (the logs and
#   metrics.jsonl). The run in docs/reproduction.md: DEADLINE=470 (the student trained for 439 s).
# --stage and --run must run on the same machine: --run uses what --stage left in $KEEP.
# Back on the build machine: cat <files>/student.safetensors.part-* > student.safetensors, then
# `sn-wgpu probe`.
set -euo pipefail
cd "$(dirname "$0")/.."
pack=device-distill
KEEP=${KEEP:-/tmp/sn-distill}
out=${OUT:-$KEEP/out}

# rewrite SRC DST DTYPE [DROP_PREFIX]: a checkpoint's tensors cast to DTYPE, those whose names start
# with DROP_PREFIX left out (the Adam moments: `adam.`), its metadata kept (safetensors and numpy
# are on both machines).
rewrite() {
  python3 - "$@" <<'PY'
import sys
from safetensors import safe_open
from safetensors.numpy import save_file
src, dst, dtype = sys.argv[1:4]
drop = sys.argv[4] if len(sys.argv) > 4 else None
with safe_open(src, "np") as f:
    kept = [k for k in f.keys() if not (drop and k.startswith(drop))]
    save_file({k: f.get_tensor(k).astype(dtype) for k in kept}, dst, metadata=f.metadata())
PY
}

case "${1:-}" in
--pack)
  rm -rf "$pack" && mkdir -p "$pack/part1" "$pack/part2/esc10/audio" "$pack/part2/wheels"
  cargo build --release --quiet
  cp target/release/sn-wgpu "$pack/part1/" && strip "$pack/part1/sn-wgpu"
  (cd "$pack/part1" && apt-get download -o APT::Architecture=amd64 libvulkan1 libglvnd0 libegl1 libgl1 \
    libglx0 libgles2 libopengl0 >/dev/null)
  sound8=${SOUND8:-../shared/data/soundnet8/sound8.npy}
  esc10=${ESC10:-../shared/data/esc10}
  python3 tools/import_soundnet8.py "$sound8" "$pack/teacher32.safetensors" >/dev/null
  rewrite "$pack/teacher32.safetensors" "$pack/part1/teacher16.safetensors" float16
  rm "$pack/teacher32.safetensors"
  cp "$esc10/meta.csv" "$pack/part2/esc10/"
  for wav in "$esc10"/audio/*.wav; do
    ffmpeg -loglevel error -i "$wav" -compression_level 12 "$pack/part2/esc10/audio/$(basename "$wav" .wav).flac"
  done
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d "$pack/part2/wheels" \
    soundfile==0.14.0 cffi==2.1.1 pycparser==3.12
  du -sh "$pack"/part*
  ;;
--stage)
  mkdir -p "$KEEP"
  cp "$pack"/part1/sn-wgpu "$KEEP/"
  for deb in "$pack"/part1/*.deb; do dpkg -x "$deb" "$KEEP/vulkan"; done
  rewrite "$pack/part1/teacher16.safetensors" "$KEEP/teacher.safetensors" float32
  ;;
--run)
  [ -x "$KEEP/sn-wgpu" ] || { echo "device_distill.sh: $KEEP has no staged binary: run --stage first on this machine" >&2; exit 1; }
  ;;
*)
  echo "usage: bash tools/device_distill.sh --pack | --stage | --run" >&2
  exit 2
  ;;
esac
[ "$1" = --pack ] && exit 0

export LD_LIBRARY_PATH="$KEEP/vulkan/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/xdg} && mkdir -p -m 700 "$XDG_RUNTIME_DIR"
bin="$KEEP/sn-wgpu"
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$icd" ] && ! "$bin" info 2>/dev/null | grep -q '^chosen:.*\(DiscreteGpu\|IntegratedGpu\)'; then
  export VK_DRIVER_FILES=$icd
fi
# The results are a few files in $OUT: the logs go as one archive.
logs="$KEEP/logs"
mkdir -p "$out" "$logs"
if [ "$1" = --stage ]; then
  "$bin" info | tee "$out/info.txt"
  timeout "${SELFTEST_LIMIT:-120}" "$bin" selftest > "$out/selftest.txt" 2>&1 && echo "selftest: passed" || echo "selftest: FAILED ($?)"
  tail -n 5 "$out/selftest.txt"
  exit 0
fi

MIXES=${MIXES:-20000}
JOBS=${JOBS:-8}
BATCH=${BATCH:-32}
DEADLINE=${DEADLINE:-420}
start=$SECONDS
stamp() { echo "[$((SECONDS - start)) s] $*"; }
python3 -c 'import soundfile' 2>/dev/null \
  || python3 -m pip install -q --no-index --no-deps --no-compile --target "$KEEP/site" "$pack"/part2/wheels/*.whl
mkdir -p "$KEEP/esc10/audio"
cp "$pack/part2/esc10/meta.csv" "$KEEP/esc10/"
PYTHONPATH="$KEEP/site" python3 - "$pack/part2/esc10/audio" "$KEEP/esc10/audio" <<'PY'
import sys, pathlib, soundfile
src, dst = map(pathlib.Path, sys.argv[1:])
for flac in sorted(src.glob("*.flac")):
    data, rate = soundfile.read(flac, dtype="int16")
    soundfile.write(dst / (flac.stem + ".wav"), data, rate, subtype="PCM_16")
PY
stamp "decoded $(ls "$KEEP/esc10/audio" | wc -l) clips"
"$bin" teach --weights "$KEEP/teacher.safetensors" --out "$KEEP/esc10-teacher" "$KEEP/esc10/audio" > "$logs/teach-esc10.log"
for k in $(seq 0 $((JOBS - 1))); do
  (python3 tools/mix_clips.py --out "$KEEP/mixes/$k" --count $((MIXES / JOBS)) --seed "$k" "$KEEP"/esc10/audio/*.wav >/dev/null \
    && "$bin" teach --weights "$KEEP/teacher.safetensors" --out "$KEEP/mixes-teacher/$k" "$KEEP/mixes/$k" > "$logs/teach-mixes-$k.log") &
done
wait
stamp "taught ESC-10 and $MIXES mixtures"
limit=$((DEADLINE - (SECONDS - start)))
status=0
timeout -s TERM "$limit" "$bin" train --data "$KEEP/esc10-teacher" "$KEEP"/mixes-teacher/* --model "${MODEL:-soundnet8}" \
  --steps 1000000 --batch-size "$BATCH" --seconds 10 --lr 0.001 --save-every 2000 --keep-last 1 \
  --out "$KEEP/student" --overwrite > "$logs/train.log" 2>&1 || status=$?
stamp "trained for $limit s (exit status $status: 124/143 is the deadline)"
tail -n 6 "$logs/train.log"
rewrite "$KEEP/student/last.safetensors" "$KEEP/student.safetensors" float32 adam.
split -b 15M -d "$KEEP/student.safetensors" "$out/student.safetensors.part-"
sha256sum "$KEEP/student.safetensors" | tee "$logs/student.sha256"
cp "$KEEP/student/loss.png" "$out/" 2>/dev/null || true
cp "$KEEP/student/metrics.jsonl" "$logs/"
tar czf "$out/logs.tgz" -C "$logs" .
stamp done
