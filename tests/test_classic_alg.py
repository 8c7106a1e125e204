"""stfusion:starfm and stfusion:fsdaf through Processing, on the built-in sample scene."""
import os

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException

from stfusion.core import metrics, raster

INT16 = raster.OutputEncoding(gdal.GDT_Int16, -9999, 0.0001)


def run(algorithm, scene, tmp_path, **overrides):
    import processing  # on sys.path once pytest-qgis has initialised Processing
    d0, d1 = scene.dates[:2]
    parameters = {"FINE_T1": scene.fine[d0], "COARSE_T1": scene.coarse[d0],
                  "COARSE_T2": scene.coarse[d1], "OUTPUT": str(tmp_path / f"{algorithm}.tif")}
    parameters.update(overrides)
    return raster.read_raster(processing.run(f"stfusion:{algorithm}", parameters)["OUTPUT"])


def shifted_copy(path, tmp_path, change):
    values = raster.read_raster(path)
    values = values + np.asarray(change, np.float32)[:, None, None]
    copy = str(tmp_path / f"shifted_{os.path.basename(path)}")
    return raster.write_raster(copy, values, raster.raster_info(path).grid, INT16)


@pytest.mark.parametrize("algorithm", ["starfm", "fsdaf"])
def test_no_change_gives_back_the_fine_image(stfusion_provider, small_scene, tmp_path,
                                             algorithm):
    d0 = small_scene.dates[0]
    fused = run(algorithm, small_scene, tmp_path, COARSE_T2=small_scene.coarse[d0])
    np.testing.assert_allclose(fused, raster.read_raster(small_scene.fine[d0]), atol=1.01e-4)


@pytest.mark.parametrize("algorithm", ["starfm", "fsdaf"])
def test_uniform_coarse_change_is_added_to_the_fine_image(stfusion_provider, small_scene,
                                                          tmp_path, algorithm):
    d0 = small_scene.dates[0]
    change = [0.01, 0.02, 0.015, 0.05, 0.03, 0.02]  # positive: no clipping at 0
    c2 = shifted_copy(small_scene.coarse[d0], tmp_path, change)
    fused = run(algorithm, small_scene, tmp_path, COARSE_T2=c2)
    expected = raster.read_raster(small_scene.fine[d0]) + np.float32(change)[:, None, None]
    if algorithm == "fsdaf":
        np.testing.assert_allclose(fused, expected, atol=2.01e-4)
    else:
        # STARFM returns a weighted mean of similar neighbours plus the change (exact only on
        # piecewise-constant images, see test_classic_core): the change comes through, the
        # texture is slightly smoothed
        shift = fused.mean(axis=(1, 2)) - expected.mean(axis=(1, 2))
        assert (np.abs(shift) < 0.2 * np.abs(change)).all()
        assert np.abs(fused - expected).mean() < 0.4 * np.abs(change).mean()


@pytest.mark.parametrize("algorithm", ["starfm", "fsdaf"])
def test_beats_the_coarse_change_on_the_sample(stfusion_provider, sample_scene, tmp_path,
                                               algorithm):
    d0, d1 = sample_scene.dates[:2]
    f1, c1, c2, f2 = (raster.read_raster(p) for p in (
        sample_scene.fine[d0], sample_scene.coarse[d0], sample_scene.coarse[d1],
        sample_scene.fine[d1]))
    fused = run(algorithm, sample_scene, tmp_path)
    def rmse(prediction):
        return float(metrics.rmse(prediction, f2).mean())

    assert rmse(fused) < rmse(f1 + c2 - c1) < rmse(f1)


@pytest.mark.parametrize("algorithm", ["starfm", "fsdaf"])
def test_nodata_propagates(stfusion_provider, small_scene, tmp_path, algorithm):
    d0, d1 = small_scene.dates[:2]
    c2 = raster.read_raster(small_scene.coarse[d1])
    c2[:, 20:30, 100:120] = np.nan
    holed = raster.write_raster(str(tmp_path / "holed.tif"), c2,
                                raster.raster_info(small_scene.coarse[d1]).grid, INT16)
    fused = run(algorithm, small_scene, tmp_path, COARSE_T2=holed)
    invalid = ~np.isfinite(fused).all(axis=0)
    assert invalid[20:30, 100:120].all() and invalid.sum() == 200


@pytest.mark.parametrize("algorithm", ["starfm", "fsdaf"])
def test_bad_input_names_the_parameter(stfusion_provider, small_scene, tmp_path, algorithm):
    with pytest.raises(QgsProcessingException, match="COARSE_T1 is not on the grid"):
        run(algorithm, small_scene, tmp_path,
            COARSE_T1=small_scene.modis[small_scene.dates[0]])
    assert not (tmp_path / f"{algorithm}.tif").exists()


def test_starfm_uses_a_second_pair(stfusion_provider, small_scene, tmp_path):
    d0, d1, d2 = small_scene.dates
    one = run("starfm", small_scene, tmp_path)
    two = run("starfm", small_scene, tmp_path, FINE_T3=small_scene.fine[d2],
              COARSE_T3=small_scene.coarse[d2], OUTPUT=str(tmp_path / "two.tif"))
    truth = raster.read_raster(small_scene.fine[d1])
    assert not np.allclose(one, two)
    assert np.nanmean(np.abs(two - truth)) < 1.5 * np.nanmean(np.abs(one - truth))


def test_an_even_window_becomes_odd_with_a_warning(stfusion_provider):
    from qgis.core import QgsProcessingFeedback
    from stfusion.algorithms.base import odd_window
    feedback = QgsProcessingFeedback()
    assert odd_window(21, feedback) == 21 and feedback.textLog() == ""
    assert odd_window(20, feedback) == 21
    assert "WINDOW must be odd; using 21 pixels." in feedback.textLog()
