"""core.resample: raw MODIS (sinusoidal, MOD09 order, fill values) onto the Landsat grid."""
import math
import os

import numpy as np
import pytest
from osgeo import gdal, osr

from helpers import checksum, shifted_copy
from stfusion.core import raster, resample, sample_scene as ss
from stfusion.core.tiling import Canceled

DATE = ss.DATES[0]
INJECTED = (0.3, -0.2)  # coarse pixels along MODIS columns / rows


def box_mean(image, width):
    return np.stack([ss._box_blur(band, width) for band in image])


def rmse(a, b):
    valid = raster.valid_mask(a, b)
    return float(np.sqrt(np.mean((a[:, valid] - b[:, valid]) ** 2)))


@pytest.fixture(scope="module")
def scene(sample_scene):
    return sample_scene


@pytest.fixture(scope="module")
def bicubic(scene, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("resample") / "bicubic.tif")
    result = resample.resample_to_grid(scene.modis[DATE], scene.fine[DATE], path)
    return path, result


def test_sinusoidal_modis_lands_on_the_landsat_grid(scene, bicubic):
    path, result = bicubic
    info = raster.raster_info(path)
    fine = raster.raster_info(scene.fine[DATE])
    assert info.grid.mismatch(fine.grid) is None
    assert info.grid.geotransform == fine.grid.geotransform
    assert (info.grid.width, info.grid.height) == (480, 480)
    assert info.band_count == 6 and info.band_names == ss.BAND_NAMES == result.band_names
    # the input encoding is kept: int16, scale 0.0001, the MODIS fill value
    assert info.gdal_type == gdal.GDT_Int16 and info.scale[0] == 1e-4
    assert info.nodata[0] == ss.MODIS_FILL
    assert result.shift_x == result.shift_y == 0.0
    assert np.isfinite(raster.read_raster(path)).all()


def test_values_match_the_simulation_where_the_scene_is_uniform(scene, bicubic, tmp_path):
    """Where the fine scene is uniform over a 3 x 3 coarse-pixel neighbourhood, the
    resampled MODIS equals the fine mean through MODIS' gain and offset, within the noise."""
    fine = raster.read_raster(scene.fine[DATE])
    width = 45  # about 3 MODIS pixels of 463 m at 30 m
    mean = box_mean(fine, width)
    std = np.sqrt(np.maximum(box_mean(fine * fine, width) - mean ** 2, 0.0))
    inner = np.zeros(fine.shape[1:], bool)
    inner[width:-width, width:-width] = True
    uniform = inner & (std.max(axis=0) < 0.01)
    assert uniform.sum() > 200
    gain = np.array(ss.MODIS_GAIN)[:, None]
    offset = np.array(ss.MODIS_OFFSET)[:, None]
    expected = mean[:, uniform] * gain + offset
    noise = ss.MODIS_NOISE
    for method in ("bicubic", "nearest"):
        path = bicubic[0] if method == "bicubic" else resample.resample_to_grid(
            scene.modis[DATE], scene.fine[DATE], str(tmp_path / "n.tif"), method=method
        ).output_path
        diff = raster.read_raster(path)[:, uniform] - expected
        assert (np.abs(diff).mean(axis=1) < 2 * noise).all(), method
        assert (np.abs(diff.mean(axis=1)) < 1.5 * noise).all(), method
        assert (np.percentile(np.abs(diff), 99, axis=1) < 6 * noise).all(), method
    # the MOD09 mapping matters: file bands in their own order do not match Landsat's
    same = resample.resample_to_grid(scene.modis[DATE], scene.fine[DATE],
                                     str(tmp_path / "same.tif"), bands="same")
    wrong = raster.read_raster(same.output_path)[:6, uniform] - expected
    assert np.abs(wrong).mean(axis=1).max() > 10 * noise


def test_each_method_runs_and_nearest_keeps_the_coarse_values(scene, tmp_path):
    modis = raster.read_raster(scene.modis[DATE], bands=ss.MODIS_FOR_LANDSAT)
    grid = raster.raster_info(scene.fine[DATE]).grid
    for method in resample.METHODS:
        out = resample.resample_to_grid(scene.modis[DATE], scene.fine[DATE],
                                        str(tmp_path / f"{method}.tif"), method=method)
        info = raster.raster_info(out.output_path)
        assert info.grid.mismatch(grid) is None and info.band_count == 6, method
        values = raster.read_raster(out.output_path)
        assert np.isfinite(values).all(), method
        assert abs(np.mean(values) - np.nanmean(modis)) < 0.01, method
        if method == "nearest":
            nearest = values
    # every output value is one of the MODIS values of its band
    for band in range(6):
        assert np.isin(nearest[band], np.unique(modis[band][np.isfinite(modis[band])])).all()
    # ... namely the value of the MODIS pixel containing the fine pixel's centre
    info = raster.raster_info(scene.modis[DATE])
    source, target = osr.SpatialReference(), osr.SpatialReference()
    source.ImportFromWkt(grid.crs_wkt)
    target.ImportFromWkt(info.grid.crs_wkt)
    for srs in (source, target):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    transform = osr.CoordinateTransformation(source, target)
    rows, cols = np.mgrid[0:480:7, 0:480:7]
    gt, mgt = grid.geotransform, info.grid.geotransform
    xs, ys = gt[0] + (cols + 0.5) * gt[1], gt[3] + (rows + 0.5) * gt[5]
    points = np.array(transform.TransformPoints(np.c_[xs.ravel(), ys.ravel()]))
    mc = (points[:, 0] - mgt[0]) / mgt[1]
    mr = (points[:, 1] - mgt[3]) / mgt[5]
    clear = (np.abs(mc - np.round(mc)) > 1e-3) & (np.abs(mr - np.round(mr)) > 1e-3)
    assert clear.mean() > 0.95
    picked = modis[:, np.floor(mr).astype(int), np.floor(mc).astype(int)]
    got = nearest[:, rows.ravel(), cols.ravel()]
    np.testing.assert_array_equal(got[:, clear], picked[:, clear])


def test_known_shift_is_recovered_and_coregistration_lowers_the_error(scene, tmp_path):
    original = resample.estimate_shift(scene.modis[DATE], scene.fine[DATE])
    assert math.hypot(original.shift_x, original.shift_y) < 0.05
    shifted = shifted_copy(scene.modis[DATE], tmp_path / "shifted.tif", INJECTED)
    before = checksum(shifted)
    plain = resample.resample_to_grid(shifted, scene.fine[DATE], str(tmp_path / "plain.tif"),
                                      method="bilinear")
    fixed = resample.resample_to_grid(shifted, scene.fine[DATE], str(tmp_path / "fixed.tif"),
                                      method="bilinear", coregister=True)
    assert checksum(shifted) == before
    # the correction undoes the injected shift
    assert abs(fixed.shift_x + INJECTED[0]) < 0.05 and abs(fixed.shift_y + INJECTED[1]) < 0.05
    assert fixed.coregistration.correlation > fixed.coregistration.correlation_unshifted
    assert any("co-registration" in line for line in fixed.log)
    # against the truth: the sample's own MODIS on the fine grid (bilinear, unshifted)
    truth = raster.read_raster(scene.coarse[DATE])
    error_plain = rmse(raster.read_raster(plain.output_path), truth)
    error_fixed = rmse(raster.read_raster(fixed.output_path), truth)
    assert error_fixed < 0.3 * error_plain, (error_plain, error_fixed)
    # a given shift is applied as is
    given = resample.resample_to_grid(shifted, scene.fine[DATE], str(tmp_path / "given.tif"),
                                      method="bilinear", shift=(-0.3, 0.2))
    assert rmse(raster.read_raster(given.output_path), truth) < 0.002


def test_fill_values_become_nodata_and_float32_is_reflectance(scene, tmp_path):
    # a MODIS copy declaring no nodata, with a block of fill values
    copy = str(tmp_path / "fill.tif")
    ds = gdal.Translate(copy, scene.modis[DATE])
    for i in range(7):
        band = ds.GetRasterBand(i + 1)
        band.DeleteNoDataValue()
        data = band.ReadAsArray()
        data[10:14, 10:14] = ss.MODIS_FILL
        band.WriteArray(data)
    ds = None
    assert raster.raster_info(copy).nodata[0] is None
    out = resample.resample_to_grid(copy, scene.fine[DATE], str(tmp_path / "out.tif"),
                                    method="nearest")
    values = raster.read_raster(out.output_path)
    hole = ~np.isfinite(values).all(axis=0)
    assert 0.005 < hole.mean() < 0.1
    assert np.isnan(values[:, hole]).all()
    assert out.nodata == (float(ss.MODIS_FILL),) * 6
    # Float32 output: the same reflectance, unscaled, NaN as nodata
    as_float = resample.resample_to_grid(copy, scene.fine[DATE], str(tmp_path / "f.tif"),
                                         method="nearest", output_type="float32")
    info = raster.raster_info(as_float.output_path)
    assert info.gdal_type == gdal.GDT_Float32 and info.scale[0] == 1.0
    assert math.isnan(info.nodata[0])
    np.testing.assert_allclose(raster.read_raster(as_float.output_path), values, atol=1e-6)
    # an explicit fill value overrides: 0 is not a fill here, so the hole is back in use
    explicit = resample.resample_to_grid(copy, scene.fine[DATE], str(tmp_path / "e.tif"),
                                         method="nearest", nodata=0)
    assert np.isfinite(raster.read_raster(explicit.output_path)).all(axis=0).mean() == 1.0


def test_tiled_equals_untiled_and_progress_reaches_one(scene, tmp_path):
    steps = []
    tiled = resample.resample_to_grid(scene.modis[DATE], scene.fine[DATE],
                                      str(tmp_path / "tiled.tif"), tile_size=100,
                                      progress=steps.append)
    whole = resample.resample_to_grid(scene.modis[DATE], scene.fine[DATE],
                                      str(tmp_path / "whole.tif"), tile_size=1024)
    np.testing.assert_array_equal(raster.read_raster(tiled.output_path),
                                  raster.read_raster(whole.output_path))
    assert len(steps) == 25 and steps == sorted(steps) and steps[-1] == pytest.approx(1.0)


def test_cancel_leaves_nothing(scene, tmp_path):
    calls = []

    def is_canceled():
        calls.append(1)
        return len(calls) > 3

    target = tmp_path / "out" / "canceled.tif"
    with pytest.raises(Canceled):
        resample.resample_to_grid(scene.modis[DATE], scene.fine[DATE], str(target),
                                  tile_size=100, is_canceled=is_canceled)
    assert os.listdir(target.parent) == []


def test_bad_input_is_named(scene, tmp_path):
    modis, fine = scene.modis[DATE], scene.fine[DATE]
    sums = checksum(modis), checksum(fine)
    out = tmp_path / "out.tif"
    with pytest.raises(resample.ResampleError) as err:
        resample.resample_to_grid(modis, fine, str(out), bands=(3, 4, 8))
    assert err.value.parameter == "bands" and "band(s) 8" in str(err.value)
    with pytest.raises(resample.ResampleError) as err:
        resample.resample_to_grid(modis, fine, str(out), bands="0,1")
    assert err.value.parameter == "bands" and "start at 1" in str(err.value)
    with pytest.raises(resample.ResampleError) as err:  # the MOD09 preset on a 6-band file
        resample.resample_to_grid(fine, fine, str(out))
    assert err.value.parameter == "bands" and "MOD09 preset" in str(err.value)
    with pytest.raises(resample.ResampleError, match="comma-separated"):
        resample.resample_to_grid(modis, fine, str(out), bands="red,nir")
    far = shifted_copy(modis, tmp_path / "far.tif", (5000, 0))
    with pytest.raises(resample.ResampleError) as err:
        resample.resample_to_grid(far, fine, str(out))
    assert err.value.parameter == "overlap" and "does not overlap" in str(err.value)
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"not a raster" * 100)
    with pytest.raises(resample.ResampleError) as err:
        resample.resample_to_grid(str(garbage), fine, str(out))
    assert err.value.parameter == "modis" and "cannot open" in str(err.value)
    with pytest.raises(resample.ResampleError) as err:
        resample.resample_to_grid(modis, str(garbage), str(out))
    assert err.value.parameter == "reference"
    with pytest.raises(resample.ResampleError):
        resample.resample_to_grid(modis, fine, str(out), method="cubic")
    assert (checksum(modis), checksum(fine)) == sums
    assert sorted(p.name for p in tmp_path.iterdir()) == ["far.tif", "garbage.tif"]


def test_parse_bands():
    assert resample.parse_bands(None, 7) == (3, 4, 1, 2, 6, 7)
    assert resample.parse_bands("mod09", 7) == (3, 4, 1, 2, 6, 7)
    assert resample.parse_bands("same", 4) == (1, 2, 3, 4)
    assert resample.parse_bands(" 2, 1 ", 2) == (2, 1)
    assert resample.parse_bands([1], 1) == (1,)
