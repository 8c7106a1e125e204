"""Which scenes a model was trained on, so a report can say when it scores a model on its
own training scene (an optimistic figure, not an independent one).

QGIS-free. ``scripts/train_default_weights.py`` writes ``<model>.training_scenes.json``
beside the weights it trains: one entry per site with its dates and grid (size,
geotransform, CRS). An image is from a training scene when it lies on one of those grids.
"""
import json
import os
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence

from . import atomic, raster


@dataclass(frozen=True)
class TrainingScene:
    site: str
    dates: Sequence[str]
    grid: raster.Grid

    def describe(self) -> str:
        return f"{self.site} ({', '.join(self.dates)})"


def sidecar_path(model_path: str) -> str:
    return os.path.splitext(model_path)[0] + ".training_scenes.json"


def write(model_path: str, scenes: Sequence[TrainingScene]) -> str:
    entries = [dict(site=s.site, dates=list(s.dates), grid=asdict(s.grid)) for s in scenes]
    path = sidecar_path(model_path)
    atomic.write_text(path, json.dumps({"scenes": entries}, indent=1))
    return path


def read(model_path: str) -> List[TrainingScene]:
    """The training scenes recorded beside ``model_path`` ([] when none are)."""
    try:
        with open(sidecar_path(model_path), encoding="utf-8") as stream:
            entries = json.load(stream)["scenes"]
    except (OSError, ValueError, KeyError):
        return []
    return [TrainingScene(e["site"], e["dates"],
                          raster.Grid(e["grid"]["width"], e["grid"]["height"],
                                      tuple(e["grid"]["geotransform"]), e["grid"]["crs_wkt"]))
            for e in entries]


def scene_of(model_path: str, image_path: str) -> Optional[TrainingScene]:
    """The training scene of ``model_path`` that ``image_path`` lies on, or None."""
    grid = raster.raster_info(image_path).grid
    return next((scene for scene in read(model_path) if scene.grid.mismatch(grid) is None),
                None)
