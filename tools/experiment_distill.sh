#!/usr/bin/env bash
# Does sn-wgpu's training learn useful features? Distillation on ESC-10, end to end:
#   1. the authors' SoundNet-8 (tools/import_soundnet8.py) teaches the ESC-10 audio (`sn-wgpu teach`;
#      the labels are not used for training);
#   2. students train from scratch on those targets (`sn-wgpu train`);
#   3. `sn-wgpu probe` (linear SVM, leave-one-fold-out) scores each student's features, its
#      random-initialised twin's, and the teacher's, on the same ESC-10 audio (training and probing
#      see the same clips: this measures the features, not generalisation to unseen audio).
#
#   bash tools/experiment_distill.sh [OUT]          # the README's run (OUT: runs/distill)
#   STEPS=3 TWIN_STEPS=2 MODELS=soundnet8-narrow8 CLIPS=12 bash tools/experiment_distill.sh OUT  # the test's
#
# Environment: STEPS (2000), MODELS ("soundnet5"; also soundnet8, soundnet8-narrowN), BATCH (4),
# CLIP_SECONDS (10), LR (0.001), TWIN_STEPS (50), CLIPS (all: only the first N clips of meta.csv are
# taught and trained on; the probes always use all of ESC-10), ESC10 (../shared/data/esc10), SOUND8
# (../shared/data/soundnet8/sound8.npy), SN_WGPU (the binary; default: cargo build --release).
# Writes OUT/results.md, OUT/results.tsv, and per model OUT/<model>/ (checkpoint, metrics, loss.png).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-runs/distill}
STEPS=${STEPS:-2000}
MODELS=${MODELS:-soundnet5}
BATCH=${BATCH:-4}
SECONDS_PER_CLIP=${CLIP_SECONDS:-10}
LR=${LR:-0.001}
TWIN_STEPS=${TWIN_STEPS:-50}
ESC10=${ESC10:-../shared/data/esc10}
SOUND8=${SOUND8:-../shared/data/soundnet8/sound8.npy}
if [ -z "${SN_WGPU:-}" ]; then
  cargo build --release --quiet
  SN_WGPU=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/sn-wgpu
fi
for need in "$ESC10/meta.csv" "$SOUND8"; do
  [ -e "$need" ] || { echo "experiment_distill.sh: $need is missing (the shared ESC-10 set and the authors' sound8.npy; set ESC10 / SOUND8)" >&2; exit 1; }
done
mkdir -p "$OUT"
now() { date +%s.%N; }
took() { python3 -c "print(f'{$(now) - $1:.1f}')"; }

# The layer probed: pool5 for SoundNet-8 (the paper's best), the last hidden layer for SoundNet-5.
layer_of() { case "$1" in soundnet5*) echo conv4 ;; *) echo pool5 ;; esac; }

python3 tools/import_soundnet8.py "$SOUND8" "$OUT/soundnet8.safetensors" >/dev/null
clips=()
while IFS=, read -r filename _; do clips+=("$ESC10/audio/$filename"); done < <(tail -n +2 "$ESC10/meta.csv" | head -n "${CLIPS:-1000000}")
start=$(now)
"$SN_WGPU" teach --weights "$OUT/soundnet8.safetensors" --out "$OUT/esc10-teacher" "${clips[@]}" > "$OUT/teach.log"
echo "teach: ${#clips[@]} clips in $(took "$start") s -> $OUT/esc10-teacher"

probe() {  # name weights layer steps training-seconds -> one line of results.tsv
  local s; s=$(now)
  "$SN_WGPU" probe "$ESC10" --weights "$2" --layer "$3" --confusion "$OUT/$1.confusion.png" --json > "$OUT/$1.probe.json"
  local acc; acc=$(python3 -c "import json; print(f'{100*json.load(open(\"$OUT/$1.probe.json\"))[\"mean_accuracy\"]:.2f}')")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$3" "$acc" "$4" "$5" "$(took "$s")" >> "$OUT/results.tsv"
  echo "probe $1 ($3): $acc% ($(took "$s") s)"
}

printf 'model\tlayer\tESC-10 accuracy %%\ttraining steps\ttraining s\tprobe s\n' > "$OUT/results.tsv"
probe teacher-soundnet8 "$OUT/soundnet8.safetensors" pool5 "(the authors')" -
for model in $MODELS; do
  layer=$(layer_of "$model")
  s=$(now)
  "$SN_WGPU" train --data "$OUT/esc10-teacher" --model "$model" --steps "$STEPS" --batch-size "$BATCH" \
    --seconds "$SECONDS_PER_CLIP" --lr "$LR" --save-every 0 --out "$OUT/$model" --overwrite > "$OUT/$model.train.log"
  train_s=$(took "$s")
  echo "train $model: $STEPS steps in $train_s s ($(grep -o 'loss [0-9.]* -> [0-9.]*' "$OUT/$model.train.log"))"
  # The twin: the same architecture and seed, untrained weights. Its batchnorm statistics are
  # estimated from the data by TWIN_STEPS steps at a learning rate of 1e-12 (the weights move by
  # about 1e-12 a step, against a spread of 0.01), so the SVM sees features on the scale a trained
  # network's have, and only the weights differ.
  "$SN_WGPU" train --data "$OUT/esc10-teacher" --model "$model" --steps "$TWIN_STEPS" --batch-size "$BATCH" \
    --seconds "$SECONDS_PER_CLIP" --lr 1e-12 --save-every 0 --out "$OUT/$model-random" --overwrite > "$OUT/$model-random.train.log"
  probe "$model" "$OUT/$model/last.safetensors" "$layer" "$STEPS" "$train_s"
  probe "$model-random" "$OUT/$model-random/last.safetensors" "$layer" "0 (+$TWIN_STEPS at lr 1e-12)" -
done
adapter=$("$SN_WGPU" info | grep -m1 '^chosen: ' | sed 's/^chosen: //' || true)
{
  echo "# Distillation on ESC-10 ($(date -u +%F), $adapter)"
  echo
  python3 - "$OUT/results.tsv" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
print("| " + " | ".join(rows[0]) + " |")
print("|" + " --- |" * len(rows[0]))
for r in rows[1:]:
    print("| " + " | ".join(r) + " |")
PY
} > "$OUT/results.md"
cat "$OUT/results.md"
