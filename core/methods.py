"""The fusion-method protocol, the registry of methods and the one tiled driver.

A fusion method predicts the fine image at t2 from one or two (fine, coarse) pairs and the
coarse image at t2, all on one grid. Each method is one module of ``core`` with:

``prepare(pairs, coarse_t2, settings, progress=..., is_canceled=..., log=None) -> state``
    The global quantities (statistics, classes, a model), computed once. ``pairs``: a list
    of one or two ``(fine, coarse)`` sources, ``coarse_t2``: a source (``raster.RasterSource``
    or ``raster.ArraySource``: ``width``, ``height``, ``band_count`` and
    ``window(x0, y0, width, height)``); a method reads what its statistics need of them
    (all four use C2 too: the pixels valid in every input, the coarse change). ``settings``:
    the method's own settings dataclass. The state is a dataclass, picklable and small
    (arrays of a few classes or bands, a network of a few thousand weights), with a class
    constant ``METHOD`` naming its registry entry.
``halo(state) -> int``
    Pixels of context a tile needs on each side for the exact (untiled) result.
``tile_multiple(state) -> int``
    Tiles and windows start on multiples of this (a block grid); the halo is one of them.
``predict_tile(state, window, is_canceled=None) -> array``
    The prediction ``(bands, rows, cols)`` float32 over ``window`` (a ``TileWindow``: the
    arrays of a tile plus its halo, NaN outside the image); NaN where an input is invalid;
    the ``window.margin`` pixels on each side may be left NaN (the driver discards them).
``PREPARE_SHARE``
    The share of a run's progress bar that ``prepare`` takes.

A method whose ``prepare`` has a costly part that does not depend on C2 may split it for
series (many dates from the same pairs, ``core/series.py``):
``prepare_pair(pair, settings, is_canceled=...) -> prepared`` (once per pair) and
``prepare_date(prepared_list, pairs, coarse_t2, settings, is_canceled=..., log=None) ->
state`` (per date, cheap). ``prepare_pair`` and ``prepare_date`` below fall back to
``prepare`` per date for the methods that do not. Per tile, a series computes a run of dates
together and passes each pair's ``TileWindow.shared`` dict to every date's ``predict_tile``:
a method may keep there what it computes from the pair's arrays alone (the default model:
``stfnet_fields.PairBase``) and reuse it for the next date's C2.

Optionally a state has ``layers``, the names of what ``predict_tile`` returns, ``bands``
bands each, the prediction first (the default model's ``("prediction", "uncertainty")``);
without it the prediction alone (``layers``).

The driver (``predict``) runs any state tile by tile over sources into an output: the same
code for arrays (``predict_arrays``) and GeoTIFFs (``predict_files``). A new method is one
module implementing the protocol and one line in ``REGISTRY``.
"""
import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, Dict, List, Optional, Protocol, Sequence, Tuple

import numpy as np

from . import raster, tiling
from .errors import InputError

# name -> module of core (imported on first use: torch only loads for the networks)
REGISTRY = {
    "stfnet": "stfnet",          # the default model: candidate change fields + blending CNN
    "paper": "paper_dcnn",       # the paper's 3x3-patch regression DCNN with HPM
    "starfm": "starfm",          # STARFM (Gao et al. 2006)
    "fsdaf": "fsdaf",            # FSDAF (Zhu et al. 2016)
}

class Source(Protocol):
    """What the methods and the driver read images through: ``raster.RasterSource`` (a
    GeoTIFF opened once) or ``raster.ArraySource``."""
    width: int
    height: int
    band_count: int

    def window(self, x0: int, y0: int, width: int, height: int) -> np.ndarray:
        """(bands, height, width) float32, NaN at nodata and outside the image."""


Pair = Tuple[Source, Source]


@dataclass
class TileWindow:
    """What ``predict_tile`` gets: the arrays of one read window (tile + halo)."""
    pairs: List[Tuple[np.ndarray, np.ndarray]]   # (fine, coarse) of each pair
    coarse_t2: np.ndarray
    margin: int = 0          # pixels on each side the caller discards (the halo)
    step: Optional[Callable[[], None]] = None   # progress inside a tile (after each band)
    # one dict per pair that the caller keeps for as long as the pair's arrays are the same
    # (a series: a tile's dates): a method may keep there what it computed from the pair
    # alone and reuse it for another C2 (None: nothing is kept)
    shared: Optional[List[Dict]] = None


def input_names(pair_count: int) -> List[str]:
    """The parameter names of the inputs in the order the methods read them: the pairs'
    fine and coarse images, then C2 (``Source`` lists, ``raster.DataCheck``)."""
    pairs = [("FINE_T1", "COARSE_T1"), ("FINE_T3", "COARSE_T3")][:pair_count]
    return [name for pair in pairs for name in pair] + ["COARSE_T2"]


def method(name: str) -> ModuleType:
    """The module implementing the method registered as ``name``."""
    if name not in REGISTRY:
        raise ValueError(f"unknown fusion method '{name}'; choose one of {tuple(REGISTRY)}")
    return importlib.import_module(f"{__package__}.{REGISTRY[name]}")


def method_of(state) -> ModuleType:
    return method(state.METHOD)


def layers(state) -> Tuple[str, ...]:
    """The layers ``predict_tile`` returns for ``state``, the prediction first."""
    return tuple(getattr(state, "layers", ("prediction",)))


def as_source(image, bands: Optional[Sequence[int]] = None):
    """A source for an array, a path or a source (None stays None)."""
    if image is None or hasattr(image, "window"):
        return image
    if isinstance(image, np.ndarray):
        return raster.ArraySource(image)
    return raster.RasterSource(str(image), bands)


def pairs_of(f1, c1, f3=None, c3=None, bands: Optional[Sequence[int]] = None) -> List[Pair]:
    """The one or two (fine, coarse) pairs as sources."""
    if (f3 is None) != (c3 is None):
        raise InputError("FINE_T3" if f3 is None else "COARSE_T3",
                         "the second pair needs both its fine (t3) and coarse (t3) image: "
                         "give both or neither")
    images = [(f1, c1)] + ([(f3, c3)] if f3 is not None else [])
    return [(as_source(f, bands), as_source(c, bands)) for f, c in images]


def prepare(name: str, pairs: Sequence[Pair], coarse_t2, settings,
            progress: Callable[[float], None] = tiling.no_progress,
            is_canceled: Callable[[], bool] = tiling.never_canceled, log=None):
    """``prepare`` of the method ``name`` (images may be arrays, paths or sources)."""
    pairs = [(as_source(f), as_source(c)) for f, c in pairs]
    return method(name).prepare(pairs, as_source(coarse_t2), settings, progress=progress,
                                is_canceled=is_canceled, log=log)


def prepare_pair(name: str, pair: Pair, settings,
                 is_canceled: Callable[[], bool] = tiling.never_canceled):
    """What method ``name`` prepares once per pair for any number of dates (None when it
    prepares everything per date)."""
    module = method(name)
    if not hasattr(module, "prepare_pair"):
        return None
    return module.prepare_pair(pair, settings, is_canceled=is_canceled)


def prepare_date(name: str, prepared: Sequence, pairs: Sequence[Pair], coarse_t2, settings,
                 is_canceled: Callable[[], bool] = tiling.never_canceled, log=None):
    """The state of method ``name`` for ``pairs`` and ``coarse_t2`` from the pairs'
    ``prepare_pair`` results: the date's part only, or all of ``prepare``."""
    module = method(name)
    if hasattr(module, "prepare_date"):
        return module.prepare_date(prepared, pairs, coarse_t2, settings,
                                   is_canceled=is_canceled, log=log)
    return module.prepare(pairs, coarse_t2, settings, is_canceled=is_canceled, log=log)


def predict(state, pairs: Sequence[Pair], coarse_t2, output, tile_size: int,
            progress: Callable[[float], None] = tiling.no_progress,
            is_canceled: Callable[[], bool] = tiling.never_canceled,
            step: Optional[Callable[[], None]] = None,
            tile_map: Optional[tiling.TileMap] = None) -> None:
    """The one tiled driver: ``state``'s prediction over the sources, tile by tile (with
    the method's halo, tiles a multiple of its ``tile_multiple``), into ``output`` (anything
    with ``write(values, x0, y0)``). Tiled and untiled runs give the same result.
    ``tile_map``: who computes the tiles (``tiling.TileMap``; None = this process, one
    after another; ``core.cluster.tile_map``: Dask workers, bit-identical)."""
    inputs, predictor, halo = _tile_job(state, pairs, coarse_t2, is_canceled, step)
    tiling.process_tiled(inputs, output, predictor, halo, tile_size, progress, is_canceled,
                         tile_map)


@dataclass
class TilePredictor:
    """The driver's per-tile function: ``predict_tile`` of ``state`` over the arrays of one
    read window (each pair's fine and coarse, then C2). A module-level class, picklable with
    its state, so a cluster sends it to its workers once per run; ``step`` and
    ``is_canceled`` are this process's callbacks and stay here (a copy has None: a cluster
    run reports progress per tile and cancels the tasks of the tiles not yet computed)."""
    state: object
    pair_count: int
    halo: int
    step: Optional[Callable[[], None]] = None
    is_canceled: Optional[Callable[[], bool]] = None

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        window = TileWindow([tuple(arrays[2 * i:2 * i + 2]) for i in range(self.pair_count)],
                            arrays[-1], self.halo, self.step)
        return method_of(self.state).predict_tile(self.state, window, self.is_canceled)

    def __getstate__(self):
        return dict(self.__dict__, step=None, is_canceled=None)


def _tile_job(state, pairs: Sequence[Pair], coarse_t2, is_canceled, step=None):
    """(inputs, function, halo) of ``tiling.process_tiled`` for ``state``."""
    inputs = [source for pair in pairs for source in pair] + [coarse_t2]
    halo = method_of(state).halo(state)
    return inputs, TilePredictor(state, len(pairs), halo, step, is_canceled), halo


def predict_arrays(state, f1, c1, c2, f3=None, c3=None, tile_size: Optional[int] = None,
                   progress: Callable[[float], None] = tiling.no_progress,
                   is_canceled: Callable[[], bool] = tiling.never_canceled) -> np.ndarray:
    """``predict`` over ``(bands, rows, cols)`` arrays into an array (all ``layers`` of the
    state, ``bands`` bands each); ``tile_size`` None or 0: one tile (the whole image)."""
    pairs = pairs_of(f1, c1, f3, c3)
    coarse_t2 = raster.ArraySource(c2)
    multiple = method_of(state).tile_multiple(state)
    size = tile_size or max(coarse_t2.width, coarse_t2.height)
    bands = pairs[0][0].band_count * len(layers(state))
    output = tiling.ArrayOutput((bands, coarse_t2.height, coarse_t2.width))
    predict(state, pairs, coarse_t2, output, -(-size // multiple) * multiple, progress,
            is_canceled)
    return output.array


def fuse_arrays(name: str, settings, f1, c1, c2, f3=None, c3=None,
                tile_size: Optional[int] = tiling.DEFAULT_TILE,
                progress: Callable[[float], None] = tiling.no_progress,
                is_canceled: Callable[[], bool] = tiling.never_canceled) -> np.ndarray:
    """``prepare`` then ``predict_arrays`` (one date)."""
    share = method(name).PREPARE_SHARE
    state = prepare(name, pairs_of(f1, c1, f3, c3), c2, settings,
                    sub_progress(progress, 0.0, share), is_canceled)
    return predict_arrays(state, f1, c1, c2, f3, c3, tile_size,
                          sub_progress(progress, share, 1.0), is_canceled)


def predict_files(state, pairs: Sequence[Pair], coarse_t2, output: str,
                  like: raster.RasterInfo, tile_size: int = tiling.DEFAULT_TILE,
                  bands: Optional[Sequence[int]] = None,
                  progress: Callable[[float], None] = tiling.no_progress,
                  is_canceled: Callable[[], bool] = tiling.never_canceled,
                  step: Optional[Callable[[], None]] = None,
                  layer_outputs: Sequence[str] = (),
                  tile_map: Optional[tiling.TileMap] = None) -> int:
    """``predict`` from ``raster.RasterSource``s into the GeoTIFF ``output``, encoded like
    the raster ``like`` (FINE_T1); tiles are whole output blocks (``tiling.whole_block_tile``).
    ``step``: progress inside a tile (``tiling.TileProgress.step``). ``layer_outputs``: one
    GeoTIFF per further layer of the state (``layers``), written alike (all or none appear).
    ``tile_map``: as in ``predict``. Returns the tile size."""
    if len(layer_outputs) != len(layers(state)) - 1:
        raise ValueError(f"the state gives the layers {layers(state)}: one output each")
    tile_size = tiling.whole_block_tile(tile_size, method_of(state).tile_multiple(state))
    inputs, predictor, halo = _tile_job(state, pairs, coarse_t2, is_canceled, step)
    tiling.write_tiled(inputs, [output, *layer_outputs], like, predictor, halo, tile_size,
                       bands, progress, is_canceled, tile_map)
    return tile_size


def open_inputs(fine_t1: str, coarse_t1: str, coarse_t2: str, fine_t3: Optional[str] = None,
                coarse_t3: Optional[str] = None, bands: Optional[Sequence[int]] = None):
    """The pairs and C2 as sources, after the one grid check (all on FINE_T1's grid, same
    band count). Returns (pairs, coarse_t2 source, FINE_T1's info)."""
    pairs = pairs_of(fine_t1, coarse_t1, fine_t3, coarse_t3, bands)
    info = raster.check_same_grid(fine_t1, [coarse_t1, coarse_t2, fine_t3, coarse_t3])
    return pairs, raster.RasterSource(coarse_t2, bands), info


def fuse_files(name: str, settings, fine_t1: str, coarse_t1: str, coarse_t2: str,
               output: str, fine_t3: Optional[str] = None, coarse_t3: Optional[str] = None,
               bands: Optional[Sequence[int]] = None, tile_size: int = tiling.DEFAULT_TILE,
               progress: Callable[[float], None] = tiling.no_progress,
               is_canceled: Callable[[], bool] = tiling.never_canceled, log=None,
               tile_map: Optional[tiling.TileMap] = None) -> str:
    """Method ``name`` on GeoTIFFs (coarse images already on the fine grid), written
    block-wise to ``output`` encoded like ``fine_t1`` (tiles computed by ``tile_map``, as
    in ``predict``). Returns ``output``."""
    share = method(name).PREPARE_SHARE
    pairs, c2, info = open_inputs(fine_t1, coarse_t1, coarse_t2, fine_t3, coarse_t3, bands)
    state = method(name).prepare(pairs, c2, settings, progress=sub_progress(progress, 0, share),
                                 is_canceled=is_canceled, log=log)
    predict_files(state, pairs, c2, output, info, tile_size, bands,
                  sub_progress(progress, share, 1.0), is_canceled, tile_map=tile_map)
    return output


def sub_progress(progress: Callable[[float], None], start: float,
                 end: float) -> Callable[[float], None]:
    """``progress`` of a part of a run that goes from ``start`` to ``end``."""
    def report(fraction: float) -> None:
        progress(start + (end - start) * min(max(fraction, 0.0), 1.0))
    return report
