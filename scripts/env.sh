# Source me: environment for running QGIS headless with the plugin from this checkout.
_STFUSION_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export QT_QPA_PLATFORM=offscreen
export QGIS_CUSTOM_CONFIG_PATH="$_STFUSION_ROOT/build/qgis-profile"
export QGIS_PLUGINPATH="$_STFUSION_ROOT/build/plugins"
_VENV_SITE=$("$_STFUSION_ROOT/.venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
export PYTHONPATH="$_VENV_SITE:$_STFUSION_ROOT/build/plugins${PYTHONPATH:+:$PYTHONPATH}"
# Debian's qgis_process wrapper passes --noversioncheck, which 3.22's binary rejects
if command -v qgis_process >/dev/null && qgis_process --version >/dev/null 2>&1; then
  export QGIS_PROCESS=qgis_process
else
  export QGIS_PROCESS=qgis_process.bin
fi
