"""stfusion:resample_modis through QGIS Processing (processing.run), as models use it."""

import numpy as np
import pytest
from osgeo import gdal

from helpers import checksum, shifted_copy
from stfusion.core import raster, sample_scene as ss

ALG = "stfusion:resample_modis"
DATE = ss.DATES[1]


@pytest.fixture
def run(stfusion_provider):
    import processing
    return lambda parameters: processing.run(ALG, parameters)


def test_algorithm_is_listed_with_documented_parameters(stfusion_provider):
    from qgis.core import QgsApplication
    algorithm = QgsApplication.processingRegistry().algorithmById(ALG)
    from stfusion.algorithms.base import GROUPS
    assert algorithm is not None and algorithm.group() == GROUPS["preparation"]
    names = [p.name() for p in algorithm.parameterDefinitions()]
    assert names == ["INPUT", "PRODUCTS", "REFERENCE", "METHOD", "BAND_MAP", "CUSTOM_BANDS",
                     "NODATA", "OUTPUT_TYPE", "COREGISTER", "KEEP_QA", "OUTPUT"]
    assert {o.name() for o in algorithm.outputDefinitions()} == {
        "OUTPUT", "SHIFT_X", "SHIFT_Y", "ACQUISITION_DATE"}
    help_text = algorithm.shortHelpString()
    for parameter in algorithm.parameterDefinitions():  # by the label the dialog shows
        assert f"<b>{parameter.description()}</b>: " in help_text, parameter.name()
    assert "positive = east" in help_text and "positive = south" in help_text
    assert algorithm.parameterDefinition("METHOD").defaultValue() == 2  # bicubic
    assert algorithm.parameterDefinition("COREGISTER").defaultValue() is False


def test_defaults_put_sinusoidal_modis_on_the_fine_grid(run, sample_scene, tmp_path):
    modis, fine = sample_scene.modis[DATE], sample_scene.fine[DATE]
    sums = checksum(modis), checksum(fine)
    output = str(tmp_path / "modis_on_fine.tif")
    result = run({"INPUT": modis, "REFERENCE": fine, "OUTPUT": output})
    assert result["OUTPUT"] == output and result["SHIFT_X"] == result["SHIFT_Y"] == 0.0
    info = raster.raster_info(output)
    assert info.grid == raster.raster_info(fine).grid
    assert info.band_names == ss.BAND_NAMES and info.scale[0] == 1e-4
    # bicubic MODIS is close to the sample's own MODIS on the fine grid (bilinear)
    values, coarse = raster.read_raster(output), raster.read_raster(sample_scene.coarse[DATE])
    assert np.isfinite(values).all()
    assert np.sqrt(np.mean((values - coarse) ** 2)) < 0.01
    assert (checksum(modis), checksum(fine)) == sums


def test_coregister_recovers_an_injected_shift(run, sample_scene, tmp_path):
    shifted = shifted_copy(sample_scene.modis[DATE], tmp_path / "shifted.tif", (0.3, -0.2))
    result = run({"INPUT": shifted, "REFERENCE": sample_scene.fine[DATE], "METHOD": 1,
                  "COREGISTER": True, "OUTPUT": str(tmp_path / "fixed.tif")})
    assert abs(result["SHIFT_X"] + 0.3) < 0.05 and abs(result["SHIFT_Y"] - 0.2) < 0.05
    truth = raster.read_raster(sample_scene.coarse[DATE])
    error = np.sqrt(np.nanmean((raster.read_raster(result["OUTPUT"]) - truth) ** 2))
    assert error < 0.003


def test_options_nearest_custom_bands_float32_and_nodata(run, sample_scene, tmp_path):
    modis, fine = sample_scene.modis[DATE], sample_scene.fine[DATE]
    result = run({"INPUT": modis, "REFERENCE": fine, "METHOD": 0, "CUSTOM_BANDS": "2, 1",
                  "OUTPUT_TYPE": 1, "NODATA": -28672, "OUTPUT": str(tmp_path / "nir_red.tif")})
    info = raster.raster_info(result["OUTPUT"])
    assert info.band_count == 2 and info.gdal_type == gdal.GDT_Float32
    assert info.band_names == ("sur_refl_b02", "sur_refl_b01")
    values = raster.read_raster(result["OUTPUT"])
    source = raster.read_raster(modis, bands=[2, 1])
    for band in range(2):
        assert np.isin(values[band], source[band]).all()
    same = run({"INPUT": modis, "REFERENCE": fine, "BAND_MAP": 1,
                "OUTPUT": str(tmp_path / "same.tif")})
    assert raster.raster_info(same["OUTPUT"]).band_count == 7
    for method in range(6):
        out = run({"INPUT": modis, "REFERENCE": fine, "METHOD": method,
                   "OUTPUT": str(tmp_path / f"m{method}.tif")})
        assert np.isfinite(raster.read_raster(out["OUTPUT"])).all()


@pytest.mark.parametrize("case, parameter, words", [
    ("no_overlap", "INPUT and REFERENCE", "does not overlap"),
    ("band_beyond", "CUSTOM_BANDS", "band(s) 8"),
    ("band_zero", "CUSTOM_BANDS", "start at 1"),
    ("preset_on_6_bands", "BAND_MAP", "MOD09 preset"),
    ("custom_empty", "CUSTOM_BANDS", "no bands are given"),
    ("unreadable", "INPUT", "cannot open"),
    ("unreadable_reference", "REFERENCE", "cannot open"),
])
def test_bad_input_is_a_clear_error_and_leaves_nothing(run, sample_scene, tmp_path, case,
                                                       parameter, words):
    from qgis.core import QgsProcessingException
    modis, fine = sample_scene.modis[DATE], sample_scene.fine[DATE]
    garbage = tmp_path / "inputs" / "garbage.tif"
    garbage.parent.mkdir()
    garbage.write_bytes(b"this is not a raster " * 50)
    far = shifted_copy(modis, tmp_path / "inputs" / "far.tif", (5000, 0))
    parameters = {"INPUT": modis, "REFERENCE": fine}
    parameters.update({
        "no_overlap": {"INPUT": far},
        "band_beyond": {"CUSTOM_BANDS": "3,4,8"},
        "band_zero": {"CUSTOM_BANDS": "0,1"},
        "preset_on_6_bands": {"INPUT": sample_scene.fine[ss.DATES[0]]},
        "custom_empty": {"BAND_MAP": 2},
        "unreadable": {"INPUT": str(garbage)},
        "unreadable_reference": {"REFERENCE": str(garbage)},
    }[case])
    inputs = {p: checksum(p) for p in (modis, fine, far, str(garbage),
                                       sample_scene.fine[ss.DATES[0]])}
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(QgsProcessingException) as err:
        run(dict(parameters, OUTPUT=str(out_dir / "result.tif")))
    message = str(err.value)
    assert f"Parameter {parameter}" in message or f"Parameters {parameter}" in message, message
    assert words in message, message
    assert list(out_dir.iterdir()) == []
    assert {p: checksum(p) for p in inputs} == inputs


def test_cancel_leaves_no_output(stfusion_provider, sample_scene, tmp_path):
    from qgis.core import (QgsApplication, QgsProcessingContext, QgsProcessingException,
                           QgsProcessingFeedback)
    algorithm = QgsApplication.processingRegistry().createAlgorithmById(ALG)
    feedback = QgsProcessingFeedback()
    feedback.cancel()
    context = QgsProcessingContext()
    parameters = {"INPUT": sample_scene.modis[DATE], "REFERENCE": sample_scene.fine[DATE],
                  "COREGISTER": True, "OUTPUT": str(tmp_path / "canceled.tif")}
    with pytest.raises(QgsProcessingException, match="Canceled"):
        algorithm.processAlgorithm(parameters, context, feedback)
    assert list(tmp_path.iterdir()) == []
