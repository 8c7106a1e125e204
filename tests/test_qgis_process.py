"""The plugin as users script it: qgis_process in a fresh profile, with and without torch."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from stfusion.algorithms import algorithm_classes
from stfusion.core import raster

ROOT = Path(__file__).resolve().parents[1]


def qgis_process_command():
    wrapper = shutil.which("qgis_process")
    if wrapper and subprocess.run([wrapper, "--version"], capture_output=True).returncode == 0:
        return wrapper
    binary = shutil.which("qgis_process.bin")
    if binary is None:
        pytest.skip("qgis_process is not installed")
    return binary


@pytest.fixture(scope="module")
def qgis_process(tmp_path_factory):
    """Run qgis_process with the plugin enabled in a brand-new profile."""
    profile = tmp_path_factory.mktemp("profile")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(profile),
               QGIS_PLUGINPATH=str(ROOT / "build" / "plugins"))
    command = qgis_process_command()

    def run(*args, extra_env=None):
        return subprocess.run([command, *args], capture_output=True, text=True, timeout=300,
                              env=dict(env, **(extra_env or {})))

    enabled = run("plugins", "enable", "stfusion")
    assert enabled.returncode == 0, enabled.stderr
    return run


def test_list_shows_every_algorithm(qgis_process):
    listing = qgis_process("list").stdout
    for algorithm in algorithm_classes():
        assert f"stfusion:{algorithm.NAME}" in listing


def test_help_documents_every_parameter(qgis_process):
    for algorithm_class in algorithm_classes():
        algorithm = algorithm_class()
        algorithm.initAlgorithm()
        result = qgis_process("help", f"stfusion:{algorithm.NAME}")
        assert result.returncode == 0, result.stderr
        for parameter in algorithm.parameterDefinitions():
            assert parameter.name() in result.stdout
            assert parameter.description() in result.stdout
        assert algorithm.shortHelpString().split("\n")[0][:40] in result.stdout


def test_missing_required_parameter_is_named(qgis_process, small_scene):
    date = small_scene.dates[0]
    result = qgis_process("run", "stfusion:fuse", "--",
                          f"FINE_T1={small_scene.fine[date]}",
                          f"COARSE_T1={small_scene.coarse[date]}", "OUTPUT=/tmp/never.tif")
    assert result.returncode != 0
    assert "COARSE_T2" in result.stdout + result.stderr
    assert not os.path.exists("/tmp/never.tif")


def test_without_torch_algorithms_list_and_errors_say_what_to_install(qgis_process, tmp_path,
                                                                      small_scene):
    blocker = tmp_path / "no_torch" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch blocked for this test')\n")
    pythonpath = f"{blocker.parent}:{os.environ.get('PYTHONPATH', '')}"
    listing = qgis_process("list", extra_env={"PYTHONPATH": pythonpath}).stdout
    for algorithm in algorithm_classes():
        assert f"stfusion:{algorithm.NAME}" in listing
    d0, d1 = small_scene.dates[:2]
    output = tmp_path / "fused.tif"
    result = qgis_process("run", "stfusion:fuse", "--", f"FINE_T1={small_scene.fine[d0]}",
                          f"COARSE_T1={small_scene.coarse[d0]}",
                          f"COARSE_T2={small_scene.coarse[d1]}", f"OUTPUT={output}",
                          extra_env={"PYTHONPATH": pythonpath})
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "PyTorch is not installed for QGIS's Python" in message
    assert "Install PyTorch" in message and "-m pip install --target" in message
    assert not output.exists()
    for method in ("starfm", "fsdaf"):       # the classic methods need no torch (nor load it)
        output = tmp_path / f"{method}.tif"
        result = qgis_process("run", f"stfusion:{method}", "--",
                              f"FINE_T1={small_scene.fine[d0]}",
                              f"COARSE_T1={small_scene.coarse[d0]}",
                              f"COARSE_T2={small_scene.coarse[d1]}", f"OUTPUT={output}",
                              extra_env={"PYTHONPATH": pythonpath})
        assert result.returncode == 0, result.stdout + result.stderr
        assert np.isfinite(raster.read_raster(str(output))).mean() > 0.99


def test_fuse_on_the_builtin_sample_with_json(qgis_process, tmp_path, small_scene):
    d0, d1 = small_scene.dates[:2]
    output = tmp_path / "fused.tif"
    report = tmp_path / "report.html"
    result = qgis_process("run", "stfusion:fuse", "--json", "--",
                          f"FINE_T1={small_scene.fine[d0]}",
                          f"COARSE_T1={small_scene.coarse[d0]}",
                          f"COARSE_T2={small_scene.coarse[d1]}",
                          f"REFERENCE={small_scene.fine[d1]}",
                          f"OUTPUT={output}", f"REPORT={report}")
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads(result.stdout)["results"]
    assert results["OUTPUT"] == str(output) and output.exists() and report.exists()
    assert 0 < results["RMSE"] < 0.02


def test_shipped_workflow_model_runs_headless(qgis_process, tmp_path, small_scene):
    d0, d1 = small_scene.dates[:2]
    fused, report = tmp_path / "fused.tif", tmp_path / "report.html"
    result = qgis_process("run", "stfusion:fuse_and_evaluate", "--json", "--",
                          f"FINE_T1={small_scene.fine[d0]}", f"MODIS_T1={small_scene.modis[d0]}",
                          f"MODIS_T2={small_scene.modis[d1]}",
                          f"REFERENCE={small_scene.fine[d1]}", f"fuse:Fused image={fused}",
                          f"evaluate:Accuracy report={report}")
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads(result.stdout)["results"]
    assert results["fuse:Fused image"] == str(fused) and fused.exists()
    assert "RMSE" in report.read_text(encoding="utf-8")


def test_shipped_series_model_runs_headless(qgis_process, tmp_path, small_scene):
    d0, d1, d2 = small_scene.dates
    result = qgis_process("run", "stfusion:fuse_series_from_downloads", "--json", "--",
                          f"LANDSAT={small_scene.fine[d0]}", f"LANDSAT={small_scene.fine[d2]}",
                          *(f"MODIS={small_scene.modis[d]}" for d in (d0, d1, d2)),
                          f"GRID={small_scene.fine[d0]}", f"fuse_series:Fused series={tmp_path}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["results"]["fuse_series:Fused series"] == str(tmp_path)
    assert (tmp_path / f"fused_{d1}.tif").exists() and not (tmp_path / f"fused_{d0}.tif").exists()


def test_fuse_series_headless(qgis_process, tmp_path, sample_series):
    """Multiple-layer inputs repeat the parameter; outputs come back typed in the JSON."""
    fine = [f"FINE={p}" for p in sample_series.fine.values()]
    coarse = [f"COARSE={p}" for p in sample_series.coarse.values()]
    masks = [f"FINE_MASKS={p}" for p in sample_series.masks.values()]
    result = qgis_process("run", "stfusion:fuse_series", "--json", "--", *fine, *coarse,
                          *masks, "TARGET_DATES=2021-05-01/2021-05-25/24",
                          "INCLUDE_FINE_DATES=1", f"OUTPUT_FOLDER={tmp_path}")
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads(result.stdout)["results"]
    assert results["OUTPUT_LAYERS"] == [str(tmp_path / "fused_2021-05-01.tif"),
                                        str(tmp_path / "fused_2021-05-25.tif")]
    assert results["DATES_WRITTEN"] == 2 and os.path.exists(results["STACK"])
