#!/usr/bin/env bash
# README screenshots: the fuse dialog and the Toolbox from the real QGIS desktop under a
# virtual display (Xvfb), and the fuse report rendered by headless Chromium.
# Usage: bash scripts/screenshots.sh   (after make setup; needs xvfb and chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
source scripts/env.sh
unset QT_QPA_PLATFORM
.venv/bin/python -c "
import sys; sys.path.insert(0, 'build/plugins')
from stfusion.core.sample_scene import make_sample_scene
make_sample_scene('$WORK/scene', size=160)"
mkdir -p "$WORK/profiles/profiles/default/QGIS" "$WORK/out"
printf '[PythonPlugins]\nstfusion=true\n[qgis]\nshowTips=false\ncheckVersion=false\n' \
  > "$WORK/profiles/profiles/default/QGIS/QGIS3.ini"
STFUSION_SCENE="$WORK/scene" STFUSION_OUT="$WORK/out" STFUSION_DOCS="$ROOT/docs" \
  xvfb-run -a -s "-screen 0 1400x900x24" timeout 300 \
  qgis --nologo --noversioncheck --profiles-path "$WORK/profiles" --code scripts/screenshots.py
for report in fuse_report fuse_report_no_reference; do
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1320,1500 \
    --screenshot="$ROOT/docs/$report.png" "file://$WORK/out/$report.html"
done
ls -l docs/*.png
