"""The built-in simulated scene: deterministic, georeferenced, and physically sensible."""
import json
import os

import numpy as np
from osgeo import gdal, osr

from stfusion.core import raster, sample_scene
from stfusion.core.sample_scene import CLOUD, make_sample_series


def test_fine_series_is_landsat_like(sample_scene):
    info = raster.raster_info(sample_scene.fine[sample_scene.dates[0]])
    assert (info.grid.width, info.grid.height, info.band_count) == (480, 480, 6)
    assert info.grid.pixel_size == (30.0, 30.0)
    assert info.gdal_type == gdal.GDT_Int16 and info.nodata[0] == -9999 and info.scale[0] == 1e-4
    assert info.band_names == ("blue", "green", "red", "nir", "swir1", "swir2")
    srs = osr.SpatialReference(wkt=info.grid.crs_wkt)
    assert srs.GetAuthorityCode(None) == "32633"
    image = raster.read_raster(info.path)
    assert np.isfinite(image).all()
    assert 0.0 < image.min() and image.max() < 0.9


def test_scene_changes_between_dates(sample_scene):
    d0, d1, d2 = sample_scene.dates
    f0, f1, f2 = (raster.read_raster(sample_scene.fine[d]) for d in (d0, d1, d2))
    nir = 3
    change = f1[nir] - f0[nir]
    # crops change at different rates: greening and senescing parcels both exist
    assert (change > 0.05).mean() > 0.05 and (change < -0.05).mean() > 0.05
    # the flood on the last date: a large patch turns from land (NIR high) to water
    flooded = (f1[nir] > 0.15) & (f2[nir] < 0.05)
    assert 0.01 < flooded.mean() < 0.1
    # sharp edges: large neighbour differences exist (parcel borders, roads, river)
    assert np.percentile(np.abs(np.diff(f0[nir], axis=1)), 99) > 0.1


def test_modis_is_sinusoidal_coarse_and_in_mod09_band_order(sample_scene):
    date = sample_scene.dates[0]
    info = raster.raster_info(sample_scene.modis[date])
    assert info.band_count == 7
    assert abs(info.grid.pixel_size[0] - 463.3127) < 1e-3
    assert "Sinusoidal" in info.grid.crs_wkt
    assert info.nodata[0] == -28672
    modis = raster.read_raster(info.path)
    fine = raster.read_raster(sample_scene.fine[date])
    # MODIS band 2 is NIR and band 1 red: their scene means follow Landsat's within gain/offset
    assert abs(np.nanmean(modis[1]) - np.mean(fine[3])) < 0.03
    assert abs(np.nanmean(modis[0]) - np.mean(fine[2])) < 0.02


def test_coarse_on_fine_grid_is_smooth_version_of_fine(sample_scene):
    date = sample_scene.dates[1]
    fine = raster.read_raster(sample_scene.fine[date])
    coarse = raster.read_raster(sample_scene.coarse[date])
    assert coarse.shape == fine.shape and np.isfinite(coarse).all()
    assert raster.raster_info(sample_scene.coarse[date]).grid == \
        raster.raster_info(sample_scene.fine[date]).grid
    # a coarse image: much less local variation than the fine one, same scene means
    assert np.abs(np.diff(coarse[3], axis=1)).mean() < 0.5 * np.abs(np.diff(fine[3], axis=1)).mean()
    assert np.abs(coarse.mean(axis=(1, 2)) - fine.mean(axis=(1, 2))).max() < 0.02


def test_deterministic_and_any_size(tmp_path, small_scene):
    again = sample_scene.make_sample_scene(str(tmp_path), size=160)
    for date in small_scene.dates:
        for kind in ("fine", "modis", "coarse"):
            a = raster.read_raster(getattr(small_scene, kind)[date])
            b = raster.read_raster(getattr(again, kind)[date])
            np.testing.assert_array_equal(a, b)
    description = json.loads((tmp_path / "dataset.json").read_text())
    assert description["size"] == [160, 160]
    assert all(os.path.exists(tmp_path / name) for name in description["fine"].values())


def test_sample_season(tmp_path):
    season = make_sample_series(str(tmp_path), size=48, coarse_dates=8, fine_every=3)
    assert list(season.fine) == ["2021-05-01", "2021-05-07", "2021-05-13", "2021-05-15"]
    assert len(season.coarse) == len(season.truth) == 8
    mask = raster.read_raster(season.masks["2021-05-07"])[0]
    seen = raster.read_raster(season.fine["2021-05-07"])
    truth = raster.read_raster(season.truth["2021-05-07"])
    assert 0.05 < (mask == CLOUD).mean() < 0.3           # the 2nd fine image is clouded
    np.testing.assert_allclose(seen[:, mask == 0], truth[:, mask == 0], atol=1e-4)
    np.testing.assert_allclose(seen[:, mask == CLOUD], 0.45, atol=1e-4)
    assert (raster.read_raster(season.masks["2021-05-01"]) == 0).all()
