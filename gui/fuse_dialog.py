"""Plugins ▸ stfusion ▸ Fuse…: the Processing dialog of stfusion:fuse, with the inputs
suggested from the project's raster layers by their dates.

The Processing dialog already runs the algorithm as a background task with progress and
cancel, checks the inputs (and says why it refuses them), loads the fused layer with an RGB
rendering and puts the report in the Results Viewer; the menu opens it filled in.
"""
import os
import re
from typing import Dict, Optional, Sequence

from ..core import raster
from ..core.acquisition import acquisition_date, date_in_text

FUSE_ID = "stfusion:fuse"
COARSE_NAMES = re.compile(r"modis|mod09|myd09|mcd43|viirs|vnp09|coarse", re.IGNORECASE)


def suggested_inputs(sources: Sequence[str], names: Sequence[str]) -> Dict[str, str]:
    """FINE_T1, COARSE_T1 and COARSE_T2 from raster files and their layer names: the earliest
    fine image that has a coarse image of its date on its grid, and the next coarse date
    without a fine image (the date to predict). Coarse = a name saying MODIS, VIIRS or
    coarse. {} when the layers do not make such a set."""
    fine, coarse = {}, {}
    for source, name in zip(sources, names):
        date = acquisition_date(source) or date_in_text(name)
        if date is not None:
            is_coarse = COARSE_NAMES.search(name + " " + os.path.basename(source))
            (coarse if is_coarse else fine).setdefault(date, []).append(source)
    for t1 in sorted(fine):
        for fine_t1 in fine[t1]:
            grid = raster.raster_info(fine_t1).grid
            on_grid = {date: path for date, paths in coarse.items() for path in paths
                       if raster.raster_info(path).grid.mismatch(grid) is None}
            targets = sorted(d for d in on_grid if d != t1 and d not in fine) or \
                sorted(d for d in on_grid if d != t1)
            if t1 in on_grid and targets:
                t2 = next((d for d in targets if d > t1), targets[-1])
                return {"FINE_T1": fine_t1, "COARSE_T1": on_grid[t1], "COARSE_T2": on_grid[t2]}
    return {}


def open_fuse_dialog(layers: Optional[Sequence] = None):
    """Show the Processing dialog of stfusion:fuse, filled in from ``layers`` (the project's
    raster layers); returns it (the caller keeps a reference while it is open)."""
    from processing import createAlgorithmDialog
    layers = [layer for layer in layers or () if layer.providerType() == "gdal"]
    dialog = createAlgorithmDialog(FUSE_ID, suggested_inputs(
        [layer.source() for layer in layers], [layer.name() for layer in layers]))
    dialog.show()
    return dialog
