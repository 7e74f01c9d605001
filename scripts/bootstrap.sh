#!/usr/bin/env bash
# Sets up everything govcloud needs on a fresh Debian/Ubuntu machine, idempotently:
# the apt packages (only those missing), the virtualenv in .venv, and the project itself.
# Usage: scripts/bootstrap.sh [--e2e]   (--e2e adds libvirtd, qemu and the tiny-guest tools)
set -euo pipefail
cd "$(dirname "$0")/.."

want=(libvirt-dev pkg-config python3-venv)
if [[ "${1:-}" == "--e2e" ]]; then
    want+=(libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils
           busybox-static cpio postgresql iproute2 chromium openssh-server prometheus)
fi
missing=()
for pkg in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
    echo "bootstrap: installing apt packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    echo "bootstrap: creating .venv"
    "$PY" -m venv .venv
fi
stamp=.venv/.govcloud-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
    echo "bootstrap: installing govcloud and its dependencies into .venv"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e ".[libvirt,dev]"
    touch "$stamp"
fi
