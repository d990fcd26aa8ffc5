#!/usr/bin/env bash
# Makes sure `promtool` (the Prometheus rule parser and unit tester) is on PATH, for the
# alert checks of scripts/check-deploy.sh and tests/deploy/test_deploy_monitoring.py. It
# comes from Debian's `prometheus` package (2.42 on bookworm), installed with apt-get
# when we are root or have passwordless sudo. The package registers a systemd service;
# nothing here starts it (and containers have no systemd).
#
# Prints the promtool version and exits 0 when it is available. Otherwise it says why,
# loudly, and exits 1 (`make tools` then fails under CI=true, and so do the checks).
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  echo "promtool present: $(promtool --version 2>&1 | head -1)"
  exit 0
fi

# root, or passwordless sudo (CI runners), and apt-get
SUDO=()
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
fi
if { [[ $(id -u) -ne 0 ]] && ((${#SUDO[@]} == 0)); } || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-promtool: promtool missing and cannot install it (need root or sudo, and apt-get);" \
    "install Debian's 'prometheus' package or put promtool on PATH" >&2
  exit 1
fi

apt_install() {
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=300 prometheus
}

echo "installing promtool (Debian package 'prometheus') with apt-get"
# A stale or empty package index is the usual reason the first attempt fails.
if ! apt_install; then
  echo "install-promtool: apt-get install failed; running apt-get update and retrying" >&2
  "${SUDO[@]}" apt-get update -q -o DPkg::Lock::Timeout=300
  apt_install
fi

if ! command -v promtool >/dev/null 2>&1; then
  echo "install-promtool: the 'prometheus' package installed but promtool is not on PATH" >&2
  exit 1
fi
echo "installed promtool: $(promtool --version 2>&1 | head -1)"
