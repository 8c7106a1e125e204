"""The one scale-ratio rule: parameter, resample_modis metadata, estimate from the data, 500 m."""
import numpy as np
import pytest
from osgeo import gdal

from stfusion.core import raster, resample, scale_ratio


def blocks(period: int, size: int = 192, bands: int = 2, seed: int = 0) -> np.ndarray:
    """A coarse image of ``period``-pixel block means on the fine grid (nearest neighbour)."""
    rng = np.random.default_rng(seed)
    n = -(-size // period)
    coarse = rng.uniform(0.05, 0.4, (bands, n, n))
    return np.repeat(np.repeat(coarse, period, 1), period, 2)[:, :size, :size]


def bilinear(period: int, size: int = 192, seed: int = 1) -> np.ndarray:
    """A coarse image bilinearly interpolated between coarse pixel centres ``period`` apart."""
    rng = np.random.default_rng(seed)
    n = size // period + 2
    coarse = rng.uniform(0.05, 0.4, (n, n))
    x = (np.arange(size) + 0.5) / period - 0.5 + 1
    i = np.floor(x).astype(int)
    w = x - i
    rows = coarse[i] * (1 - w)[:, None] + coarse[i + 1] * w[:, None]
    return (rows[:, i] * (1 - w) + rows[:, i + 1] * w)[None]


def test_block_means_and_bilinear_periods_are_found():
    nearest = scale_ratio.estimate_period([blocks(12)])
    assert nearest.period == pytest.approx(12, abs=0.06) and nearest.order == 1
    linear = scale_ratio.estimate_period([bilinear(8)])
    assert linear.period == pytest.approx(8, abs=0.06) and linear.order == 2
    with_nodata = blocks(16)
    with_nodata[:, 40:90, 30:70] = np.nan
    assert scale_ratio.estimate_period([with_nodata]).period == pytest.approx(16, abs=0.06)


def test_texture_without_block_structure_gives_no_estimate():
    rng = np.random.default_rng(3)
    noise = rng.normal(size=(2, 128, 128))
    assert scale_ratio.estimate_period([noise]) is None
    smooth = np.cumsum(np.cumsum(noise, 1), 2)           # a random field, no pixel grid
    assert scale_ratio.estimate_period([smooth]) is None


def test_sample_scene_modis_period(sample_scene):
    """The sample's MODIS (463 m sinusoidal pixels, bilinear onto the 30 m grid) has the
    period 463.3 / 30 = 15.44 fine pixels."""
    images = [raster.read_raster(sample_scene.coarse[d]) for d in sample_scene.dates[:2]]
    estimate = scale_ratio.estimate_period(images)
    assert estimate.period == pytest.approx(sample_scene.scale_ratio, abs=0.3)


def write(path, values, pixel=30.0, metadata=None):
    grid = raster.Grid(values.shape[2], values.shape[1], (0.0, pixel, 0.0, 0.0, 0.0, -pixel), "")
    raster.write_raster(str(path), values.astype(np.float32), grid)
    if metadata:
        ds = gdal.Open(str(path), gdal.GA_Update)
        for key, value in metadata.items():
            ds.SetMetadataItem(key, value)
        ds = None
    return str(path)


def test_resolve_follows_the_rule(tmp_path):
    fine = write(tmp_path / "f.tif", np.random.default_rng(0).uniform(size=(2, 96, 96)))
    estimated = write(tmp_path / "c.tif", blocks(12, 96))
    tagged = write(tmp_path / "m.tif", blocks(12, 96), metadata={"STFUSION_COARSE_PIXEL_SIZE":
                                                                  "480"})
    flat = write(tmp_path / "flat.tif", np.full((2, 96, 96), 0.2))
    given = scale_ratio.resolve(fine, [estimated], 20.0)
    assert (given.value, given.source) == (20.0, "parameter")
    meta = scale_ratio.resolve(fine, [estimated, tagged])
    assert (meta.value, meta.source, meta.block) == (16.0, "metadata", 16)
    assert "480 / 30" in meta.note and meta.h_over_l == pytest.approx(30 / 480)
    est = scale_ratio.resolve(fine, [estimated])
    assert est.source == "estimated" and est.block == 12
    assumed = scale_ratio.resolve(fine, [flat, None])
    assert assumed.source == "assumed" and assumed.value == pytest.approx(500 / 30)
    assert "500 m MODIS" in assumed.note


def test_resample_modis_records_the_source_pixel_size(sample_scene, tmp_path):
    date = sample_scene.dates[0]
    out = str(tmp_path / "on_grid.tif")
    result = resample.resample_to_grid(sample_scene.modis[date], sample_scene.fine[date], out,
                                       method="nearest")
    # the sample's MODIS pixel is 463.3127 m in the sinusoidal projection; in UTM its sides
    # are sheared but about as long
    assert result.source_pixel_size == pytest.approx(463.3, rel=0.02)
    rule = scale_ratio.resolve(sample_scene.fine[date], [out])
    assert rule.source == "metadata"
    assert rule.value == pytest.approx(result.source_pixel_size / 30.0)
    assert any("STFUSION_COARSE_PIXEL_SIZE" in line for line in result.log)
