"""core.landsat: Collection 2 Level-2 scenes (folder, MTL, .tar) stacked with QA masking."""
import numpy as np
import pytest
from osgeo import gdal

from product_fixtures import (HEIGHT, ORIGIN, OTHER_SATURATION_PIXEL, QA_PIXELS,
                              SATURATED_PIXEL, WIDTH, make_c2l2_scene, make_collection1_mtl)
from stfusion.core import landsat, raster
from stfusion.core.errors import InputError


@pytest.fixture
def oli(tmp_path):
    return make_c2l2_scene(tmp_path / "scene")


def _masked(values):
    return ~np.isfinite(values).all(axis=0)


@pytest.mark.parametrize("spacecraft", ["LANDSAT_8", "LANDSAT_9", "LANDSAT_7", "LANDSAT_5"])
def test_stack_has_band_order_scale_date_and_every_qa_condition_masked(tmp_path, spacecraft):
    scene = make_c2l2_scene(tmp_path / "scene", spacecraft=spacecraft)
    output = str(tmp_path / "stack.tif")
    result = landsat.prepare_scene(str(scene.folder), output, tile_size=16)
    info = raster.raster_info(output)
    assert info.band_names == landsat.BAND_NAMES == ("blue", "green", "red", "nir", "swir1",
                                                     "swir2")
    assert info.gdal_type == gdal.GDT_UInt16 and info.nodata == (0.0,) * 6
    assert info.scale == (2.75e-5,) * 6 and info.offset == (-0.2,) * 6
    assert info.grid.geotransform == (ORIGIN[0], 30.0, 0.0, ORIGIN[1], 0.0, -30.0)
    ds = gdal.Open(output)
    assert ds.GetMetadataItem("ACQUISITIONDATE") == scene.date
    assert ds.GetMetadataItem("LANDSAT_PRODUCT_ID") == scene.product_id
    values = raster.read_raster(output)
    expected = scene.reflectance()
    # OLI blue is band 2, TM/ETM+ blue band 1: DN = 8000 + 1000 * band + 37 * row + col
    blue = 2 if spacecraft in ("LANDSAT_8", "LANDSAT_9") else 1
    assert values[0, 10, 12] == pytest.approx((8000 + 1000 * blue + 37 * 10 + 12) * 2.75e-5
                                              - 0.2, abs=1e-6)
    masked = _masked(values)
    cirrus_counts = spacecraft in ("LANDSAT_8", "LANDSAT_9")
    for name, pixel in QA_PIXELS.items():
        assert masked[pixel], name
    assert masked[SATURATED_PIXEL] and not masked[OTHER_SATURATION_PIXEL]
    assert masked.sum() == len(QA_PIXELS) + 1
    np.testing.assert_allclose(values[:, ~masked], expected[:, ~masked], atol=1e-6)
    assert result.fill_pixels == 1 and result.masked_pixels == len(QA_PIXELS)
    assert result.masked_percent == pytest.approx(100 * 6 / (WIDTH * HEIGHT - 1))
    assert result.counts["cloud"] == 1 and result.counts["saturated"] == 1
    assert result.scene.is_oli == cirrus_counts


def test_mask_choice_and_saturation_switch(oli, tmp_path):
    output = str(tmp_path / "clouds_only.tif")
    result = landsat.prepare_scene(str(oli.mtl), output, mask=("cloud",), saturated=False)
    masked = _masked(raster.read_raster(output))
    assert masked[QA_PIXELS["cloud"]] and masked[QA_PIXELS["fill"]]
    for name in ("dilated_cloud", "cirrus", "cloud_shadow", "snow"):
        assert not masked[QA_PIXELS[name]], name
    assert not masked[SATURATED_PIXEL] and masked.sum() == 2
    assert result.masked_pixels == 1 and "saturated" not in result.counts
    with pytest.raises(InputError, match="unknown QA condition.*clouds"):
        landsat.prepare_scene(str(oli.mtl), output, mask=("clouds",))


def test_mtl_xml_and_tar_give_the_same_stack(oli, tmp_path):
    from_folder = landsat.prepare_scene(str(oli.folder), str(tmp_path / "a.tif"))
    xml = oli.folder / f"{oli.product_id}_MTL.xml"
    landsat.prepare_scene(str(xml), str(tmp_path / "b.tif"))
    archive = oli.tar(tmp_path / f"{oli.product_id}.tar")
    from_tar = landsat.prepare_scene(str(archive), str(tmp_path / "c.tif"))
    assert from_tar.scene.band_paths[0].startswith("/vsitar/")
    assert not any(p.name.endswith(".TIF") for p in tmp_path.iterdir())  # nothing extracted
    a, b, c = (raster.read_raster(str(tmp_path / f"{n}.tif")) for n in "abc")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert from_folder.masked_percent == from_tar.masked_percent


def test_extent_is_clipped_on_read(oli, tmp_path):
    # columns 10..19, rows 5..14 (edges inside pixels are grown to whole pixels)
    extent = (ORIGIN[0] + 10 * 30 + 5, ORIGIN[1] - 15 * 30 + 5,
              ORIGIN[0] + 20 * 30 - 5, ORIGIN[1] - 5 * 30 - 5)
    output = str(tmp_path / "clip.tif")
    result = landsat.prepare_scene(str(oli.folder), output, extent=extent)
    info = raster.raster_info(output)
    assert (info.grid.width, info.grid.height) == (10, 10) == result.window[2:]
    assert info.grid.geotransform[:4] == (ORIGIN[0] + 300, 30.0, 0.0, ORIGIN[1] - 150)
    np.testing.assert_allclose(raster.read_raster(output),
                               oli.reflectance()[:, 5:15, 10:20], atol=1e-6)
    assert result.masked_pixels == 0 and result.masked_percent == 0.0
    with pytest.raises(InputError, match="EXTENT.*does not overlap"):
        landsat.prepare_scene(str(oli.folder), output, extent=(0, 0, 10, 10))


@pytest.mark.parametrize("case, message", [
    ("level1", "L1TP.*Level-1.*expected a Landsat Collection 2 Level-2"),
    ("collection1", "Collection 1 Level-1 scene"),
    ("collection1_sr", "Collection 1 surface reflectance"),
    ("missing", "lacks .*_SR_B5.TIF"),
    ("mixed_folder", "holds 2 scenes"),
    ("mixed_files", "lacks .*other scenes \\(LC08_L2SP_190028"),
    ("not_a_scene", "neither a folder"),
    ("empty", "no \\*_MTL.txt or \\*_MTL.xml"),
])
def test_wrong_input_says_what_was_found_and_what_is_expected(tmp_path, case, message):
    folder = tmp_path / "scene"
    if case == "level1":
        path = make_c2l2_scene(folder, level="L1TP").folder
    elif case == "collection1":
        path = make_collection1_mtl(folder)
    elif case == "collection1_sr":
        folder.mkdir()
        (folder / "LC08_L1TP_190027_20180714_20180730_01_T1_sr_band2.tif").write_bytes(b"")
        path = folder
    elif case == "missing":
        path = make_c2l2_scene(folder, skip_files=("_SR_B5.TIF",)).folder
    elif case == "mixed_folder":
        make_c2l2_scene(folder)
        path = make_c2l2_scene(folder, path_row="190028").folder
    elif case == "mixed_files":
        scene = make_c2l2_scene(tmp_path / "a", skip_files=("_SR_B2.TIF",))
        other = make_c2l2_scene(tmp_path / "b", path_row="190028")
        (other.folder / f"{other.product_id}_SR_B2.TIF").rename(
            scene.folder / f"{other.product_id}_SR_B2.TIF")
        path = scene.mtl
    elif case == "not_a_scene":
        path = tmp_path / "image.tif"
        path.write_bytes(b"")
    else:
        folder.mkdir()
        (folder / "readme.txt").write_text("")
        path = folder
    with pytest.raises(InputError, match=message) as caught:
        landsat.prepare_scene(str(path), str(tmp_path / "out.tif"))
    assert caught.value.parameter == "INPUT"
    assert not (tmp_path / "out.tif").exists()
