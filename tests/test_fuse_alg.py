"""stfusion:fuse through QGIS Processing: outputs, seams, nodata, cancel and bad input."""
import os

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsProcessingFeedback

from helpers import checksum
from stfusion.core import metrics, raster


def fuse(scene, tmp_path, name="fused.tif", feedback=None, **overrides):
    import processing  # on sys.path once pytest-qgis has initialised Processing
    d0, d1 = scene.dates[:2]
    parameters = {"FINE_T1": scene.fine[d0], "COARSE_T1": scene.coarse[d0],
                  "COARSE_T2": scene.coarse[d1], "OUTPUT": str(tmp_path / name)}
    parameters.update(overrides)
    return processing.run("stfusion:fuse", parameters, feedback=feedback)


def test_fused_image_is_on_the_fine_grid_and_beats_the_coarse_change(
        stfusion_provider, small_scene, tmp_path):
    d0, d1 = small_scene.dates[:2]
    inputs = [small_scene.fine[d0], small_scene.coarse[d0], small_scene.coarse[d1]]
    before = [checksum(p) for p in inputs]
    results = fuse(small_scene, tmp_path, REFERENCE=small_scene.fine[d1],
                   REPORT=str(tmp_path / "report.html"))
    assert [checksum(p) for p in inputs] == before
    fine_info, out_info = (raster.raster_info(p) for p in (small_scene.fine[d0],
                                                           results["OUTPUT"]))
    assert out_info.grid == fine_info.grid and out_info.band_count == 6
    assert out_info.gdal_type == gdal.GDT_Int16 and out_info.scale == fine_info.scale
    assert out_info.band_names == fine_info.band_names
    f1, c1, c2, f2 = (raster.read_raster(p) for p in inputs + [small_scene.fine[d1]])
    fused = raster.read_raster(results["OUTPUT"])
    def rmse(prediction):
        return float(metrics.rmse(prediction, f2).mean())

    assert rmse(fused) < rmse(f1 + c2 - c1)
    assert results["RMSE"] == pytest.approx(rmse(fused), rel=0.02)
    assert os.path.exists(results["REPORT"])


def test_tiled_run_equals_untiled_run(stfusion_provider, small_scene, tmp_path):
    whole = fuse(small_scene, tmp_path, "whole.tif", TILE_SIZE=1024)
    feedback = QgsProcessingFeedback()
    tiled = fuse(small_scene, tmp_path, "tiled.tif", feedback=feedback, TILE_SIZE=48)
    assert "fusing 9 tile(s) of 60 px" in feedback.textLog()     # really tiled
    a, b = (raster.read_raster(r["OUTPUT"]) for r in (whole, tiled))
    # stored as int16 x 1e-4: equal floats can only round one unit apart
    assert np.nanmax(np.abs(a - b)) <= 1.01e-4
    assert np.mean(a != b) < 0.001


def test_nodata_in_any_input_is_nodata_in_the_output(stfusion_provider, small_scene,
                                                     tmp_path):
    d1 = small_scene.dates[1]
    coarse = raster.read_raster(small_scene.coarse[d1])
    coarse[2, 40:50, 60:75] = np.nan
    holed = str(tmp_path / "coarse_holes.tif")
    raster.write_raster(holed, coarse, raster.raster_info(small_scene.coarse[d1]).grid,
                        raster.OutputEncoding(gdal.GDT_Int16, -9999, 0.0001))
    fused = raster.read_raster(fuse(small_scene, tmp_path, COARSE_T2=holed)["OUTPUT"])
    invalid = ~np.isfinite(fused).all(axis=0)
    expected = np.zeros(invalid.shape, bool)
    expected[40:50, 60:75] = True
    np.testing.assert_array_equal(invalid, expected)


def test_cancel_leaves_no_output(stfusion_provider, small_scene, tmp_path):
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda value: value > 0 and feedback.cancel())
    with pytest.raises(QgsProcessingException, match="[Cc]ancel"):
        fuse(small_scene, tmp_path, feedback=feedback, TILE_SIZE=48)
    assert os.listdir(tmp_path) == []


def test_coarse_not_on_the_fine_grid_points_to_resample_modis(stfusion_provider, small_scene,
                                                              tmp_path):
    with pytest.raises(QgsProcessingException, match="COARSE_T2.*resample_modis"):
        fuse(small_scene, tmp_path, COARSE_T2=small_scene.modis[small_scene.dates[1]])
    assert os.listdir(tmp_path) == []


def test_band_count_mismatch_names_the_parameter(stfusion_provider, small_scene, tmp_path):
    d1 = small_scene.dates[1]
    three = str(tmp_path / "three_bands.tif")
    raster.write_raster(three, raster.read_raster(small_scene.coarse[d1])[:3],
                        raster.raster_info(small_scene.coarse[d1]).grid)
    with pytest.raises(QgsProcessingException, match="COARSE_T2 has 3 bands"):
        fuse(small_scene, tmp_path, COARSE_T2=three)


def test_second_pair_needs_both_images(stfusion_provider, small_scene, tmp_path):
    with pytest.raises(QgsProcessingException, match="FINE_T3 and COARSE_T3"):
        fuse(small_scene, tmp_path, FINE_T3=small_scene.fine[small_scene.dates[2]])


def test_model_file_that_would_run_code_is_refused(stfusion_provider, small_scene, tmp_path):
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    crafted = tmp_path / "evil.pt"
    crafted.write_bytes(pickle.dumps({"state_dict": Payload()}))
    with pytest.raises(QgsProcessingException, match="MODEL"):
        fuse(small_scene, tmp_path, MODEL=str(crafted))
    assert not (tmp_path / "pwned").exists()


def test_uncertainty_output_and_its_report(stfusion_provider, small_scene, tmp_path):
    d1 = small_scene.dates[1]
    feedback = QgsProcessingFeedback()
    results = fuse(small_scene, tmp_path, feedback=feedback,
                   UNCERTAINTY=str(tmp_path / "error.tif"), REFERENCE=small_scene.fine[d1],
                   REPORT=str(tmp_path / "report.html"))
    fused, error = (raster.read_raster(results[k]) for k in ("OUTPUT", "UNCERTAINTY"))
    assert raster.raster_info(results["UNCERTAINTY"]).grid == \
        raster.raster_info(results["OUTPUT"]).grid
    assert np.array_equal(np.isnan(fused), np.isnan(error)) and np.nanmin(error) >= 0
    assert "scale ratio 15.4 estimated" in feedback.textLog()
    assert "pair 1: fine/coarse correlation" in feedback.textLog()
    with open(results["REPORT"]) as report:
        text = report.read()
    assert "uncertainty › spearman" in text and "uncertainty › share below" in text
    with pytest.raises(QgsProcessingException, match="UNCERTAINTY"):
        fuse(small_scene, tmp_path, "same.tif", UNCERTAINTY=str(tmp_path / "same.tif"))
