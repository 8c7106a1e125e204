"""The shipped workflow models: registered by the provider and runnable on the sample scene."""
import json

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
