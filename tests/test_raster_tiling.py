"""Raster I/O and the tiled driver: values, nodata, atomic writes, seamless tiles."""
import os
import platform
import pickle

import numpy as np
import pytest
from osgeo import gdal

from stfusion.core import raster, tiling

GRID = raster.Grid(37, 23, (1000.0, 30.0, 0.0, 2000.0, 0.0, -30.0), "")
INT16 = raster.OutputEncoding(gdal.GDT_Int16, -9999, 0.0001)


def test_round_trip_applies_scale_and_nodata(tmp_path):
    values = np.random.default_rng(0).uniform(0, 0.5, (2, 23, 37)).astype(np.float32)
    values[1, 5, 7] = np.nan
    path = raster.write_raster(str(tmp_path / "a.tif"), values, GRID, INT16, ["red", "nir"])
    info = raster.raster_info(path)
    assert info.band_names == ("red", "nir") and info.nodata == (-9999, -9999)
    assert info.scale == (0.0001, 0.0001) and info.grid == GRID
    back = raster.read_raster(path)
    assert np.isnan(back[1, 5, 7]) and np.isfinite(back).sum() == values.size - 1
    np.testing.assert_allclose(back[0], values[0], atol=0.5e-4)
    dataset = gdal.Open(path)
    stored = dataset.GetRasterBand(2).ReadAsArray()
    assert stored[5, 7] == -9999 and stored[0, 0] == round(values[1, 0, 0] / 0.0001)


def test_valid_values_never_collide_with_nodata(tmp_path):
    encoding = raster.OutputEncoding(gdal.GDT_Int16, -32768, 1.0)
    values = np.array([[[-40000.0, 5.0, 40000.0]]], dtype=np.float32)
    path = raster.write_raster(str(tmp_path / "c.tif"), values,
                               raster.Grid(3, 1, GRID.geotransform, ""), encoding)
    np.testing.assert_array_equal(raster.read_raster(path)[0, 0], [-32767, 5, 32767])


def test_window_outside_the_raster_is_nan(tmp_path):
    values = np.ones((1, 23, 37), dtype=np.float32)
    path = raster.write_raster(str(tmp_path / "b.tif"), values, GRID)
    window = raster.read_window(path, -2, -3, 6, 5)
    assert np.isnan(window[:, :3, :]).all() and np.isnan(window[:, :, :2]).all()
    assert (window[:, 3:, 2:] == 1).all()
    assert np.isnan(raster.read_window(path, 100, 100, 4, 4)).all()


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.tif"
    with pytest.raises(RuntimeError):
        with raster.AtomicGeoTiff(str(target), GRID, 1) as out:
            out.write(np.zeros((1, 23, 37), np.float32))
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_grid_mismatch_explains_itself():
    other = raster.Grid(37, 23, (1000.0, 30.0, 0.0, 2015.0, 0.0, -30.0), "")
    assert GRID.mismatch(GRID) is None
    assert "geotransform" in GRID.mismatch(other)
    assert "size" in GRID.mismatch(raster.Grid(36, 23, GRID.geotransform, ""))


def test_unreadable_raster_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_text("not a raster")
    with pytest.raises(raster.RasterError, match="cannot open raster"):
        raster.raster_info(str(bad))


def neighbourhood_mean(image):
    """A 5x5 mean ignoring NaN: needs a halo of 2 to be seamless."""
    padded = np.pad(image, ((0, 0), (2, 2), (2, 2)), constant_values=np.nan)
    stack = [padded[:, dy:dy + image.shape[1], dx:dx + image.shape[2]]
             for dy in range(5) for dx in range(5)]
    return np.nanmean(stack, axis=0)


def test_tiled_processing_is_seamless_and_propagates_nodata(tmp_path):
    values = np.random.default_rng(1).uniform(0, 1, (2, 23, 37)).astype(np.float32)
    values[0, 10, 10] = np.nan
    path = raster.write_raster(str(tmp_path / "in.tif"), values, GRID)
    expected = neighbourhood_mean(raster.read_raster(path))
    expected[:, 10, 10] = np.nan
    out_path = str(tmp_path / "out.tif")
    fractions = []
    with raster.AtomicGeoTiff(out_path, GRID, 2) as out:
        tiling.process_tiled([raster.RasterSource(path)], out, neighbourhood_mean, halo=2,
                             tile_size=8, progress=fractions.append)
    np.testing.assert_allclose(raster.read_raster(out_path), expected, atol=1e-6)
    assert len(fractions) == tiling.tile_count(37, 23, 8) == 15 and fractions[-1] == 1.0


def test_cancel_between_tiles_leaves_no_output(tmp_path):
    path = raster.write_raster(str(tmp_path / "in.tif"), np.ones((1, 23, 37), np.float32), GRID)
    calls = []
    with pytest.raises(tiling.Canceled):
        with raster.AtomicGeoTiff(str(tmp_path / "out.tif"), GRID, 1) as out:
            tiling.process_tiled([raster.RasterSource(path)], out, lambda a: a, tile_size=8,
                                 is_canceled=lambda: len(calls) > 2,
                                 progress=calls.append)
    assert sorted(os.listdir(tmp_path)) == ["in.tif"]


def test_band_subset_read_in_one_pass_matches_each_band(tmp_path):
    values = np.random.default_rng(2).uniform(0, 0.5, (3, 23, 37)).astype(np.float32)
    values[2, 4, 4] = np.nan
    path = raster.write_raster(str(tmp_path / "p.tif"), values, GRID, INT16)
    assert gdal.Open(path).GetMetadata("IMAGE_STRUCTURE")["INTERLEAVE"] == "PIXEL"
    window = raster.read_window(path, 3, 2, 20, 15, bands=[3, 1])
    for i, band in enumerate([3, 1]):
        alone = raster.read_window(path, 3, 2, 20, 15, bands=[band])[0]
        np.testing.assert_array_equal(window[i], alone)
    assert np.isnan(window[0, 2, 1]) and np.isfinite(window[1]).all()


@pytest.mark.parametrize("tile, multiple, expected", [(512, 17, 544), (512, 15, 480),
                                                      (512, 1, 512), (100, 1, 96), (48, 15, 60),
                                                      (5, 1, 5)])
def test_tiles_are_whole_output_blocks(tile, multiple, expected):
    assert tiling.whole_block_tile(tile, multiple) == expected


def test_process_files_writes_one_block_per_tile(tmp_path):
    grid = raster.Grid(100, 70, GRID.geotransform, "")
    values = np.random.default_rng(3).uniform(0, 1, (2, 70, 100)).astype(np.float32)
    path = raster.write_raster(str(tmp_path / "in.tif"), values, grid)
    out = tiling.process_files([path], str(tmp_path / "out.tif"), path, lambda a: a * 2,
                               tile_size=32)
    assert gdal.Open(out).GetRasterBand(1).GetBlockSize() == [32, 32]
    np.testing.assert_allclose(raster.read_raster(out), values * 2, rtol=1e-6)
    small = tiling.process_files([path], str(tmp_path / "small.tif"), path, lambda a: a,
                                 tile_size=512)     # one tile: blocks no bigger than needed
    assert gdal.Open(small).GetRasterBand(1).GetBlockSize() == [112, 80]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_free_heap_pages_are_released_between_tiles():
    assert tiling._MALLOC_TRIM is not None
    tiling.release_free_memory()


MMAPPED_CHUNKS = """
import ctypes
from stfusion.core import tiling

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
                .split()]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p

def mmapped_by_malloc(size):
    before = libc.mallinfo2().hblks
    pointer = libc.malloc(size)
    mmapped = libc.mallinfo2().hblks - before
    libc.free(ctypes.c_void_p(pointer))
    return mmapped

print(mmapped_by_malloc(4 << 20), end=" ")
tiling.tune_allocator_for_tiles()
print(mmapped_by_malloc(4 << 20))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_tile_temporaries_reuse_the_heap_in_a_dask_worker_environment():
    """Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536: a 4 MB temporary is
    then a fresh mmap (page faults, system time); after the tuning the heap serves it."""
    import subprocess
    import sys
    env = dict(os.environ, MALLOC_TRIM_THRESHOLD_="65536",
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([sys.executable, "-c", MMAPPED_CHUNKS], env=env,
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["1", "0"]


def test_sources_serve_windows_with_nan_outside_and_pickle(tmp_path):
    values = np.random.default_rng(4).uniform(0, 0.5, (2, 23, 37)).astype(np.float32)
    path = raster.write_raster(str(tmp_path / "s.tif"), values, GRID, INT16)
    stored = raster.read_raster(path)
    for source in (raster.RasterSource(path), raster.ArraySource(stored)):
        window = source.window(-3, 20, 10, 6)             # reaches out left and below
        assert window.shape == (2, 6, 10) and (source.width, source.height) == (37, 23)
        np.testing.assert_array_equal(window[:, :3, 3:], stored[:, 20:23, 0:7])
        assert np.isnan(window[:, :, :3]).all() and np.isnan(window[:, 3:]).all()
        copy = pickle.loads(pickle.dumps(source))          # travels to another process
        np.testing.assert_array_equal(copy.window(5, 5, 4, 4), stored[:, 5:9, 5:9])
