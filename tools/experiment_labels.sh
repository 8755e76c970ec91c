#!/usr/bin/env bash
# The paper's supervised baselines and fine-tuning on a labeled folder (Table 5, "Comparison of
# Supervision"): SoundNet-5 and SoundNet-8 trained from the labels alone, from random
# initialisation, and SoundNet-8 fine-tuned from pretrained weights with a new classifier on conv7
# (its body up to pool5 frozen, and, with FULL=1, a second run that trains every layer as the
# original fine-tuning does). Each is leave-one-fold-out over FOLDS, a run per fold; the table of
# each is its folds.json, and this script ends by printing them side by side.
#
#   python3 tools/import_soundnet8.py ../shared/data/soundnet8/sound8.npy soundnet8.safetensors
#   WEIGHTS=soundnet8.safetensors bash tools/experiment_labels.sh
#
# DATA (default ../shared/data/esc10), OUT (default runs/labels), FOLDS (default all), STEPS
# (default 400, 10 epochs of ESC-10's 320 training clips at batch 8), SN_WGPU_BIN (default the
# release build).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/esc10}
OUT=${OUT:-runs/labels}
FOLDS=${FOLDS:-all}
STEPS=${STEPS:-400}
WEIGHTS=${WEIGHTS:?set WEIGHTS to an sn-wgpu checkpoint of SoundNet-8 (tools/import_soundnet8.py)}
if [ -z "${SN_WGPU_BIN:-}" ]; then
    cargo build --release --quiet
    SN_WGPU_BIN=target/release/sn-wgpu
fi
common=(--labels "$DATA" --folds "$FOLDS" --steps "$STEPS" --batch-size 8 --save-every 100)
run() {
    local name=$1
    shift
    echo "== $name: $*"
    /usr/bin/time -f "$name: %e s wall" "$SN_WGPU_BIN" train "${common[@]}" --out "$OUT/$name" "$@"
}
# SoundNet-8 needs 9.5 s of input for one output step, so its clips are tiled to 10 s; SoundNet-5
# takes ESC's 5 s clips as they are.
run finetune-frozen --init "$WEIGHTS" --head conv7 --freeze pool5 --seconds 10
run soundnet8-scratch --model soundnet8 --seconds 10
run soundnet5-scratch --model soundnet5 --seconds 5
if [ "${FULL:-0}" = 1 ]; then
    run finetune-full --init "$WEIGHTS" --head conv7 --seconds 10
fi
python3 - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
print("| run | folds | held-out clip accuracy per fold | mean | minutes |")
print("|---|---|---|---|---|")
for table in sorted(out.glob("*/folds.json")):
    t = json.loads(table.read_text())
    folds = t["folds"]
    per = ", ".join(f"{100 * f['accuracy']:.2f}" for f in folds)
    minutes = sum(f["seconds"] for f in folds) / 60
    print(f"| {table.parent.name} | {len(folds)} | {per} | {100 * t['mean_accuracy']:.2f}% | {minutes:.1f} |")
PY
