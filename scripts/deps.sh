#!/usr/bin/env bash
# Installs the Debian packages ChuanSpeed builds, tests and runs with; apt-installs only what is
# missing, so a machine that has everything is left untouched (and needs no network).
# Usage: scripts/deps.sh [--python]   (--python adds the optional tools/ stack: Debian's torch)
set -euo pipefail
pkgs=(build-essential cmake pkg-config
      libopenblas-openmp-dev libomp-dev libdnnl-dev
      libopenmpi-dev openmpi-bin
      libsentencepiece-dev sentencepiece
      nlohmann-json3-dev libcli11-dev libfmt-dev
      libgtest-dev libgmock-dev libbenchmark-dev
      libzstd-dev libsnappy-dev zlib1g-dev)
if [[ "${1:-}" == "--python" ]]; then pkgs+=(python3-torch python3-numpy python3-pip); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then exit 0; fi
echo "[deps] installing: ${missing[*]}"
SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || { echo "[deps] apt-get update failed. Hint: check network access to Debian mirrors." >&2; exit 1; }
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
