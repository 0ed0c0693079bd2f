#!/usr/bin/env bash
# Reads a PokeVLA dataset with the reference LeRobot v3 reader (the standalone `lerobot-dataset`
# package), in a separate virtual environment so that it cannot change ours.
# Usage: bash scripts/check_with_lerobot_reference.sh DATASET_DIR [VENV_DIR]
set -euo pipefail
dataset=${1:?usage: $0 DATASET_DIR [VENV_DIR]}
venv=${2:-.venv-lerobot-check}
if [ ! -x "$venv/bin/python" ]; then
  python3.11 -m venv "$venv"
  # torch pinned to the CPU build; torchvision has no CPU build here (the script stands in for the one class it needs)
  "$venv/bin/pip" install -q "torch==2.13.0" "lerobot-dataset==0.4.4"
fi
"$venv/bin/python" "$(dirname "$0")/check_with_lerobot_reference.py" "$dataset"
