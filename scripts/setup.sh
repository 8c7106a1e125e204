#!/usr/bin/env bash
# Installs whatever is missing for stfusion's demo and tests, then installs the plugin into a
# private QGIS profile under build/. Safe to run again: each step checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SYSTEM_PYTHON=/usr/bin/python3
log() { echo "[setup] $*"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. QGIS, GDAL, scikit-image and Chromium (the last two for tests) from the distribution
if ! "$SYSTEM_PYTHON" -c "import qgis.core, osgeo.gdal, skimage" 2>/dev/null \
   || ! { command -v qgis_process.bin || command -v qgis_process; } >/dev/null \
   || ! command -v chromium >/dev/null; then
  log "installing QGIS, GDAL, scikit-image and Chromium from apt"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    qgis python3-qgis qgis-providers gdal-bin python3-gdal python3-skimage chromium >/dev/null
fi
QGIS_VERSION_INT=$("$SYSTEM_PYTHON" -c "from qgis.core import Qgis; print(Qgis.QGIS_VERSION_INT)" 2>/dev/null)
PY_VERSION=$("$SYSTEM_PYTHON" -c "import sys; print('%d.%d' % sys.version_info[:2])")
log "QGIS $QGIS_VERSION_INT, Python $PY_VERSION ($(. /etc/os-release; echo "$PRETTY_NAME"))"

# 2. a venv over the system site packages (QGIS, GDAL and numpy come from the system:
#    a second numpy in the venv would break osgeo.gdal_array, so numpy is pinned to it)
if [ ! -x .venv/bin/python ] || [ "$(.venv/bin/python -c "import sys; print('%d.%d' % sys.version_info[:2])")" != "$PY_VERSION" ]; then
  log "creating .venv"
  rm -rf .venv
  "$SYSTEM_PYTHON" -m venv --system-site-packages .venv
fi
mkdir -p build
"$SYSTEM_PYTHON" -c "import numpy; print('numpy==' + numpy.__version__)" > build/constraints.txt
if [ "$QGIS_VERSION_INT" -ge 33400 ]; then PYTEST_QGIS="pytest-qgis>=2.1,<6"; else PYTEST_QGIS="pytest-qgis==2.1.0"; fi
TORCH="torch==2.13.0"
if ! .venv/bin/python -c "import torch, pytest_qgis" 2>/dev/null; then
  log "installing $TORCH and $PYTEST_QGIS into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -c build/constraints.txt \
    "$TORCH" "$PYTEST_QGIS"
fi
# Dask for the cluster runs (python -m stfusion.cli --workers/--scheduler, the SCHEDULER
# parameter): pinned, under the constraints that pin the system's numpy; Debian's older
# python3-distributed, if installed, is shadowed by the venv's
DASK_VERSION=2026.8.0
if ! .venv/bin/python -c "import sys, dask, distributed; sys.exit(not dask.__version__ == distributed.__version__ == '$DASK_VERSION')" 2>/dev/null; then
  log "installing dask and distributed $DASK_VERSION into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -c build/constraints.txt \
    "dask==$DASK_VERSION" "distributed==$DASK_VERSION"
fi

# 2b. real-product tests: pyhdf writes HDF4 (MODIS HDF-EOS) and h5py HDF5 (VIIRS HDF-EOS5)
# fixtures; GDAL must read HDF4 and HDF5
if ! .venv/bin/python -c "import h5py" 2>/dev/null; then
  log "installing h5py into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -c build/constraints.txt h5py
fi
if ! .venv/bin/python -c "import pyhdf.SD" 2>/dev/null; then
  log "installing pyhdf into .venv"
  if ! .venv/bin/python -m pip install -q --disable-pip-version-check -c build/constraints.txt \
       pyhdf; then
    log "no pyhdf wheel for Python $PY_VERSION: building it against the system libhdf4"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libhdf4-dev python3-dev \
      build-essential >/dev/null
    INCLUDE_DIRS=/usr/include/hdf .venv/bin/python -m pip install -q \
      --disable-pip-version-check -c build/constraints.txt pyhdf
  fi
fi
GDAL_FORMATS=$(gdalinfo --formats)
if ! grep -q "^ *HDF4 " <<<"$GDAL_FORMATS" || ! grep -q "^ *HDF5 " <<<"$GDAL_FORMATS"; then
  log "installing GDAL's HDF4/HDF5 drivers"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gdal-plugins \
    $(apt-cache search --names-only '^(libgdal|gdal)-.*hdf[45]' | cut -d' ' -f1) >/dev/null
fi

# 3. the plugin, linked into a private QGIS profile, enabled for qgis_process
mkdir -p build/plugins build/qgis-profile
ln -sfn "$ROOT" build/plugins/stfusion
. scripts/env.sh
if ! "$QGIS_PROCESS" plugins 2>/dev/null | grep -q "^\* *stfusion"; then
  log "enabling the stfusion plugin in build/qgis-profile"
  "$QGIS_PROCESS" plugins enable stfusion >/dev/null 2>&1 || true
fi
log "ready: $QGIS_PROCESS with the stfusion plugin"
