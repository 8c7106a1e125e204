"""stfusion:train through Processing: a model file fuse can use, a report, determinism."""
import os

import pytest
import torch
from qgis.core import QgsApplication, QgsProcessingException

from stfusion.core import models


def train(scene, tmp_path, name="model.pt", **overrides):
    import processing  # on sys.path once pytest-qgis has initialised Processing
    parameters = {"FINE": [scene.fine[d] for d in scene.dates[:2]],
                  "COARSE": [scene.coarse[d] for d in scene.dates[:2]],
                  "EPOCHS": 1, "OUTPUT_MODEL": str(tmp_path / name),
                  "REPORT": str(tmp_path / (name + ".html"))}
    parameters.update(overrides)
    parameters = {k: v for k, v in parameters.items() if v is not None}  # None: the default
    return processing.run("stfusion:train", parameters)


@pytest.mark.parametrize("architecture, band_agnostic", [(0, True), (1, False)])
def test_trained_model_loads_with_metadata_and_fuses(stfusion_provider, tiny_scene, tmp_path,
                                                     architecture, band_agnostic):
    import processing
    results = train(tiny_scene, tmp_path, ARCHITECTURE=architecture)
    model, metadata = models.load_model(results["OUTPUT_MODEL"])
    assert metadata["architecture"] == ("stfnet", "paper")[architecture]
    assert metadata["band_agnostic"] is band_agnostic
    assert metadata["training"]["epochs"] == 1 and metadata["training"]["learning_rate"] == 0.01
    assert len(metadata["history"]["train_loss"]) == 1
    with open(results["REPORT"]) as handle:
        report = handle.read()
    assert "<svg" in report and "loss" in report.lower()
    d0, d1 = tiny_scene.dates[:2]
    fused = processing.run("stfusion:fuse", {
        "FINE_T1": tiny_scene.fine[d0], "COARSE_T1": tiny_scene.coarse[d0],
        "COARSE_T2": tiny_scene.coarse[d1], "MODEL": results["OUTPUT_MODEL"],
        "REFERENCE": tiny_scene.fine[d1], "OUTPUT": str(tmp_path / "fused.tif")})
    assert os.path.exists(fused["OUTPUT"]) and fused["RMSE"] < 0.05


def test_same_seed_same_weights(stfusion_provider, tiny_scene, tmp_path):
    a = models.load_model(train(tiny_scene, tmp_path, "a.pt", ARCHITECTURE=1)["OUTPUT_MODEL"])
    b = models.load_model(train(tiny_scene, tmp_path, "b.pt", ARCHITECTURE=1)["OUTPUT_MODEL"])
    c = models.load_model(train(tiny_scene, tmp_path, "c.pt", ARCHITECTURE=1,
                                SEED=7)["OUTPUT_MODEL"])
    for key, value in a[0].state_dict().items():
        assert torch.equal(value, b[0].state_dict()[key])
    assert any(not torch.equal(v, c[0].state_dict()[k]) for k, v in a[0].state_dict().items())


def test_fine_and_coarse_lists_must_match(stfusion_provider, tiny_scene, tmp_path):
    with pytest.raises(QgsProcessingException, match="FINE and COARSE"):
        train(tiny_scene, tmp_path, COARSE=[tiny_scene.coarse[tiny_scene.dates[0]]])
    assert not (tmp_path / "model.pt").exists()


def test_default_architecture_needs_two_dates(stfusion_provider, tiny_scene, tmp_path):
    d0 = tiny_scene.dates[0]
    with pytest.raises(QgsProcessingException, match="at least two"):
        train(tiny_scene, tmp_path, FINE=[tiny_scene.fine[d0]],
              COARSE=[tiny_scene.coarse[d0]])


def test_default_model_file_is_kept_in_the_profile_and_never_replaced(stfusion_provider,
                                                                       tiny_scene, tmp_path):
    from stfusion.algorithms.train import models_folder
    folder = models_folder()
    assert folder.startswith(QgsApplication.qgisSettingsDirPath())
    first = train(tiny_scene, tmp_path, ARCHITECTURE=1, OUTPUT_MODEL=None)["OUTPUT_MODEL"]
    second = train(tiny_scene, tmp_path, ARCHITECTURE=1, OUTPUT_MODEL=None)["OUTPUT_MODEL"]
    try:
        assert os.path.dirname(first) == os.path.dirname(second) == folder
        assert first != second and os.path.basename(second).startswith("model-")
        assert models.load_model(first)[1]["architecture"] == "paper"
        assert os.path.exists(second)
    finally:
        for path in (first, second):
            os.remove(path)


def test_sgd_settings_are_advanced(stfusion_provider):
    from qgis.core import QgsProcessingParameterDefinition
    algorithm = QgsApplication.processingRegistry().algorithmById("stfusion:train")
    advanced = {d.name() for d in algorithm.parameterDefinitions()
                if d.flags() & QgsProcessingParameterDefinition.FlagAdvanced}
    assert advanced == {"BATCH_SIZE", "LEARNING_RATE", "MOMENTUM", "WEIGHT_DECAY", "SEED"}
