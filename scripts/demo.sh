#!/usr/bin/env bash
# make demo: the main job on the built-in sample scene, through qgis_process.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
.venv/bin/python scripts/demo.py "$@"
