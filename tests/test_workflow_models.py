"""The shipped workflow models: registered by the provider and runnable on the sample scene."""
import csv
import json
import os

import numpy as np
from qgis.core import QgsApplication

from stfusion.algorithms.base import GROUPS
from stfusion.core import metrics, raster

MODEL_ID = "stfusion:fuse_and_evaluate"


def test_provider_registers_the_workflow_model_in_its_group(stfusion_provider):
    model = QgsApplication.processingRegistry().algorithmById(MODEL_ID)
    assert model is not None and model.provider().id() == "stfusion"
    assert model.group() == GROUPS["workflows"]
    names = {d.name() for d in model.parameterDefinitions()}
    assert {"FINE_T1", "MODIS_T1", "MODIS_T2", "REFERENCE"} <= names
    assert "resample" in model.shortHelpString()


def test_workflow_model_runs_from_downloaded_modis_to_a_report(stfusion_provider, small_scene,
                                                               tmp_path):
    import processing
    d0, d1 = small_scene.dates[:2]
    results = processing.run(MODEL_ID, {
        "FINE_T1": small_scene.fine[d0], "MODIS_T1": small_scene.modis[d0],
        "MODIS_T2": small_scene.modis[d1], "REFERENCE": small_scene.fine[d1],
        "fuse:Fused image": str(tmp_path / "fused.tif"),
        "evaluate:Accuracy report": str(tmp_path / "report.html")})
    assert results["fuse:Fused image"] == str(tmp_path / "fused.tif")
    fused = raster.read_raster(str(tmp_path / "fused.tif"))
    reference = raster.read_raster(small_scene.fine[d1])
    rmse = float(np.sqrt(np.nanmean((fused - reference) ** 2)))
    assert fused.shape == reference.shape and 0 < rmse < 0.03
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "RMSE" in report and "coarse" in report
    assert metrics.METRICS[0] in report
    # the baseline is a temporary file of the model: labelled by its role, not "OUTPUT.tif"
    sidecar = json.loads((tmp_path / "report.html.json").read_text())
    labels = [method["label"] for method in sidecar["methods"]]
    assert labels == ["prediction (fused)", "coarse"]


SERIES_MODEL_ID = "stfusion:fuse_series_from_downloads"


def test_series_model_runs_from_downloaded_modis_to_a_fused_series(stfusion_provider,
                                                                   small_scene, tmp_path):
    import processing
    d0, d1, d2 = small_scene.dates
    model = QgsApplication.processingRegistry().algorithmById(SERIES_MODEL_ID)
    assert model is not None and model.group() == GROUPS["workflows"]
    assert "resample_modis_series" in model.shortHelpString()
    # Landsat of the first and last date, MODIS of all three: the middle date is fused
    results = processing.run(SERIES_MODEL_ID, {
        "LANDSAT": [small_scene.fine[d0], small_scene.fine[d2]],
        "MODIS": [small_scene.modis[d] for d in (d0, d1, d2)], "GRID": small_scene.fine[d0],
        "fuse_series:Fused series": str(tmp_path / "series")})
    folder = tmp_path / "series"
    assert results["fuse_series:Fused series"] == str(folder)
    assert sorted(p for p in os.listdir(folder) if p.endswith(".tif")) == [f"fused_{d1}.tif"]
    fused = raster.read_raster(str(folder / f"fused_{d1}.tif"))
    truth = raster.read_raster(small_scene.fine[d1])
    rmse = float(np.sqrt(np.nanmean((fused - truth) ** 2)))
    assert np.isfinite(fused).all() and 0 < rmse < 0.03
    with open(folder / "fused_sources.csv") as stream:
        row = next(csv.DictReader(stream))
    assert (row["pairs"], row["coarse"]) == (f"{d0} + {d2}", f"modis_{d1}.tif")   # both sides
