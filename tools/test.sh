#!/usr/bin/env bash
# The test command (README): makes sure a GPU adapter exists, then runs every test on it.
#
# On a machine with no GPU driver it installs Mesa's lavapipe (a Vulkan driver that runs on the
# CPU) when run as root, because GPU tests never skip: no adapter is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# Mesa's window-system code complains on every device open when this is unset; nothing here draws.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR="/tmp/xdg-runtime-$(id -u)"
  mkdir -p -m 700 "$XDG_RUNTIME_DIR"
fi

if ! cargo run --quiet -- info >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "tools/test.sh: no GPU adapter; installing lavapipe (apt-get install -y mesa-vulkan-drivers)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers >/dev/null
  fi
fi
if ! cargo run --quiet -- info; then
  echo "tools/test.sh: still no GPU adapter. Install a Vulkan driver: on Debian/Ubuntu," \
       "'apt-get install mesa-vulkan-drivers' gives lavapipe, which runs on the CPU." >&2
  exit 1
fi

# The pretrained-model tests convert the authors' weights with tools/import_soundnet8.py (numpy).
if ! python3 -c "import numpy" 2>/dev/null; then
  echo "tools/test.sh: installing numpy for tools/import_soundnet8.py"
  python3 -m pip install --quiet numpy
fi

cargo test "$@"
