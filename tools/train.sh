#!/usr/bin/env bash
# The main job: `sn-wgpu train` (with no arguments, the built-in synthetic demo), built in release
# mode. On a machine with no GPU driver it first installs lavapipe when it can (root with apt, as
# tools/test.sh does: tools/adapter.sh), saying so; on a machine with a GPU it adds nothing.
#
#   bash tools/train.sh                    # the demo
#   bash tools/train.sh --data my-set/     # any `sn-wgpu train` arguments
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/adapter.sh
cargo build --release --quiet
ensure_adapter target/release/sn-wgpu info
exec target/release/sn-wgpu train "$@"
