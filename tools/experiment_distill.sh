#!/usr/bin/env bash
# Does sn-wgpu's training learn useful features? Distillation on ESC-10, end to end:
#   1. the authors' SoundNet-8 (tools/import_soundnet8.py) teaches the ESC-10 audio (`sn-wgpu teach`;
#      the labels are not used for training), and MIXES random mixtures of two ESC-10 clips
#      (tools/mix_clips.py: more unlabeled audio, each mixture labelled by the teacher itself);
#   2. students train from scratch on those targets (`sn-wgpu train --data` both sets);
#   3. `sn-wgpu probe` (linear SVM, leave-one-fold-out) scores each student's features, its
#      random-initialised twin's, and the teacher's, on the same ESC-10 audio (training and probing
#      see the same clips: this measures the features, not generalisation to unseen audio).
#
#   bash tools/experiment_distill.sh [OUT]          # the run in docs/reproduction.md (OUT: runs/distill)
#   STEPS=3 TWIN_STEPS=2 MODELS=soundnet8-narrow8 CLIPS=12 MIXES=6 bash tools/experiment_distill.sh OUT  # the test's
#
# Environment: STEPS (3000), MODELS ("soundnet8"; also soundnet5, soundnet8-narrowN), MIXES (4000; 0:
# ESC-10 alone), BATCH (4), CLIP_SECONDS (10), LR (0.001), TWIN_STEPS (50), CLIPS (all: only the
# first N clips of meta.csv are taught, mixed and trained on; the probes always use all of ESC-10),
# ESC10 (../shared/data/esc10), SOUND8 (../shared/data/soundnet8/sound8.npy), SN_WGPU (the binary;
# default: cargo build --release).
# Writes OUT/results.md, OUT/results.tsv (one row per model and probed layer), and per model
# OUT/<model>/ (checkpoint, metrics, loss.png).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-runs/distill}
STEPS=${STEPS:-3000}
MODELS=${MODELS:-soundnet8}
MIXES=${MIXES:-4000}
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

# The layers probed: pool5 and conv6 for SoundNet-8 (the paper's best two), the last two hidden
# layers for SoundNet-5.
layers_of() { case "$1" in soundnet5*) echo pool3,conv4 ;; *) echo pool5,conv6 ;; esac; }

python3 tools/import_soundnet8.py "$SOUND8" "$OUT/soundnet8.safetensors" >/dev/null
clips=()
while IFS=, read -r filename _; do clips+=("$ESC10/audio/$filename"); done < <(tail -n +2 "$ESC10/meta.csv" | head -n "${CLIPS:-1000000}")
start=$(now)
"$SN_WGPU" teach --weights "$OUT/soundnet8.safetensors" --out "$OUT/esc10-teacher" "${clips[@]}" > "$OUT/teach.log"
echo "teach: ${#clips[@]} clips in $(took "$start") s -> $OUT/esc10-teacher"
data=("$OUT/esc10-teacher")
if [ "$MIXES" -gt 0 ]; then
  start=$(now)
  rm -rf "$OUT/mixes"
  python3 tools/mix_clips.py --out "$OUT/mixes" --count "$MIXES" --seed 0 "${clips[@]}" > /dev/null
  "$SN_WGPU" teach --weights "$OUT/soundnet8.safetensors" --out "$OUT/mixes-teacher" "$OUT"/mixes/*.wav > "$OUT/teach-mixes.log"
  echo "mixtures: $MIXES taught in $(took "$start") s -> $OUT/mixes-teacher"
  data+=("$OUT/mixes-teacher")
fi

probe() {  # name weights layers steps training-seconds -> one line of results.tsv per layer
  local s; s=$(now)
  "$SN_WGPU" probe "$ESC10" --weights "$2" --layers "$3" --confusion "$OUT/$1.confusion.png" \
    --layers-chart "$OUT/$1.layers.png" --json > "$OUT/$1.probe.json"
  local probe_s; probe_s=$(took "$s")
  python3 - "$OUT/$1.probe.json" "$1" "$4" "$5" "$probe_s" <<'PY' | tee -a "$OUT/results.tsv"
import json, sys
path, name, steps, train_s, probe_s = sys.argv[1:]
report = json.load(open(path))
for row in report["table"]["rows"] if "table" in report else [report]:  # several layers: a table
    print(f"{name}\t{row['layer']}\t{100 * row['mean_accuracy']:.2f}\t{steps}\t{train_s}\t{probe_s}")
PY
}

printf 'model\tlayer\tESC-10 accuracy %%\ttraining steps\ttraining s\tprobe s\n' > "$OUT/results.tsv"
probe teacher-soundnet8 "$OUT/soundnet8.safetensors" pool5 "(the authors')" -
for model in $MODELS; do
  layers=$(layers_of "$model")
  s=$(now)
  "$SN_WGPU" train --data "${data[@]}" --model "$model" --steps "$STEPS" --batch-size "$BATCH" \
    --seconds "$SECONDS_PER_CLIP" --lr "$LR" --save-every 0 --out "$OUT/$model" --overwrite > "$OUT/$model.train.log"
  train_s=$(took "$s")
  echo "train $model: $STEPS steps in $train_s s ($(grep -o 'loss [0-9.]* -> [0-9.]*' "$OUT/$model.train.log"))"
  # The twin: the same architecture and seed, untrained weights. Its batchnorm statistics are
  # estimated from the data by TWIN_STEPS steps at a learning rate of 1e-12 (the weights move by
  # about 1e-12 a step, against a spread of 0.01), so the SVM sees features on the scale a trained
  # network's have, and only the weights differ.
  "$SN_WGPU" train --data "${data[@]}" --model "$model" --steps "$TWIN_STEPS" --batch-size "$BATCH" \
    --seconds "$SECONDS_PER_CLIP" --lr 1e-12 --save-every 0 --out "$OUT/$model-random" --overwrite > "$OUT/$model-random.train.log"
  probe "$model" "$OUT/$model/last.safetensors" "$layers" "$STEPS" "$train_s"
  probe "$model-random" "$OUT/$model-random/last.safetensors" "$layers" "0 (+$TWIN_STEPS at lr 1e-12)" -
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
