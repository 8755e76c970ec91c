# Sourced by tools/train.sh and tools/test.sh: makes sure wgpu finds a GPU adapter.
#
# `ensure_adapter CMD...` runs CMD (a command that exits non-zero when no adapter is found, such
# as `cargo run --quiet -- info`). When it fails on a machine where this script runs as root with
# apt, it installs Mesa's lavapipe, a Vulkan driver that runs on the CPU, saying so, and checks
# again; elsewhere it says what to install. On a machine with a GPU driver it installs nothing.

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
    echo "sn-wgpu: no GPU adapter; installing lavapipe, a Vulkan driver on the CPU, from bookworm-backports" \
         "(/etc/apt/sources.list.d/bookworm-backports.sources, apt-get install -t bookworm-backports mesa-vulkan-drivers)"
    printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm-backports' 'Components: main' \
      'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' > /etc/apt/sources.list.d/bookworm-backports.sources
    if apt-get update -qq && apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers >/dev/null; then
      return
    fi
    echo "sn-wgpu: bookworm-backports failed; installing Debian's own mesa-vulkan-drivers"
    rm -f /etc/apt/sources.list.d/bookworm-backports.sources
  else
    echo "sn-wgpu: no GPU adapter; installing lavapipe, a Vulkan driver on the CPU (apt-get install -y mesa-vulkan-drivers)"
  fi
  apt-get update -qq
  apt-get install -y -qq mesa-vulkan-drivers >/dev/null
}

ensure_adapter() {
  if "$@" >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    install_lavapipe
  fi
  if ! "$@"; then
    echo "sn-wgpu: still no GPU adapter. Install your GPU's Vulkan, Metal or DX12 driver; with no GPU, a CPU" \
         "Vulkan driver: on Debian/Ubuntu 'apt-get install mesa-vulkan-drivers' gives lavapipe." >&2
    return 1
  fi
}
