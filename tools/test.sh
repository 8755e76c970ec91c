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

# Mesa's lavapipe. On Debian 12 (bookworm) from bookworm-backports (Mesa 25): its compiler runs
# sn-wgpu's kernels 1.6x faster than bookworm's own Mesa 22.3, and it has no 65,535-iteration cap
# on a shader's loops. Elsewhere, or if backports cannot be reached, the distribution's package.
install_lavapipe() {
  export DEBIAN_FRONTEND=noninteractive
  if grep -q '^VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
    echo "tools/test.sh: no GPU adapter; installing lavapipe from bookworm-backports" \
         "(/etc/apt/sources.list.d/bookworm-backports.sources, apt-get install -t bookworm-backports mesa-vulkan-drivers)"
    printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm-backports' 'Components: main' \
      'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' > /etc/apt/sources.list.d/bookworm-backports.sources
    if apt-get update -qq && apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers >/dev/null; then
      return
    fi
    echo "tools/test.sh: bookworm-backports failed; installing Debian's own mesa-vulkan-drivers"
    rm -f /etc/apt/sources.list.d/bookworm-backports.sources
  else
    echo "tools/test.sh: no GPU adapter; installing lavapipe (apt-get install -y mesa-vulkan-drivers)"
  fi
  apt-get update -qq
  apt-get install -y -qq mesa-vulkan-drivers >/dev/null
}

if ! cargo run --quiet -- info >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    install_lavapipe
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
  python3 -m pip install --quiet --no-cache-dir numpy
fi

# The units page is tested in a real headless browser: Debian's chromium.
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "tools/test.sh: installing chromium for the units page test (apt-get install chromium)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# tools/teacher_from_video.py's test (kernels-tests/tools.rs) runs ffmpeg and small torchvision
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
# (kernels-tests/common: `per_class!`), so one pass covers both device classes.
cargo test "$@"
