#!/usr/bin/env bash
# Installs the Debian packages that headless rendering needs (Mesa EGL and OSMesa, and the
# libraries opencv-python loads), only those that are missing. Safe to run again.
set -euo pipefail
packages=(libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1 libopengl0 libgl1 libglib2.0-0 libosmesa6)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: missing system packages ${missing[*]} and no apt-get here; install their equivalents by hand" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "error: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing system packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
