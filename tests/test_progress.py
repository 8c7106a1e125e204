"""Progress moves inside a tile: a one-tile scene does not sit at the end of preparation."""
from stfusion.core import fusion, raster
from stfusion.core.tiling import TileProgress


def test_tile_progress_steps_between_whole_tiles():
    seen = []
    progress = TileProgress(seen.append, tiles=2, steps_per_tile=4)
    progress.step()
    progress.step()
    progress.tile_done(0.5)
    progress.step()
    progress.tile_done(1.0)
    assert seen == [0.125, 0.25, 0.5, 0.625, 1.0]


def test_one_tile_fusion_reports_progress_per_band(small_scene, tmp_path):
    d0, d1 = small_scene.dates[:2]
    seen = []
    fusion.fuse_files(small_scene.fine[d0], small_scene.coarse[d0], small_scene.coarse[d1],
                      str(tmp_path / "fused.tif"), tile_size=512, progress=seen.append)
    bands = raster.raster_info(small_scene.fine[d0]).band_count
    inside_the_tile = sorted({round(f, 4) for f in seen if 0.2 < f < 1.0})
    assert len(inside_the_tile) >= bands - 1, seen
    assert seen == sorted(seen) and seen[-1] == 1.0
