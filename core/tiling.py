"""Tiles with a halo, and a block-wise driver that streams rasters through a function.

Memory stays bounded by the tile size whatever the raster size: each tile is read with
``halo`` extra pixels on every side (NaN outside the raster), processed, cropped back to
its core and written to an ``AtomicGeoTiff``.
"""
import ctypes
import ctypes.util
import math
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from osgeo import gdal

from . import raster

DEFAULT_TILE = 512
# GDAL's block cache (default: 5 % of RAM) would otherwise grow with the scene; reads
# decode all bands of a block at once and tiles write whole blocks, so little is needed
GDAL_CACHE_BYTES = 32 << 20
OUTPUT_BLOCK_MULTIPLE = 16       # GeoTIFF block sides are multiples of 16
SAMPLE_WINDOW = 512              # side of the windows read for global statistics
SAMPLE_MAX_WINDOWS = 9


class Canceled(Exception):
    """Raised when the user cancels a running job between tiles."""


@dataclass(frozen=True)
class Tile:
    x0: int
    y0: int
    width: int
    height: int
    halo: int

    @property
    def read_window(self):
        """(x0, y0, width, height) of the tile grown by the halo on every side."""
        return (self.x0 - self.halo, self.y0 - self.halo,
                self.width + 2 * self.halo, self.height + 2 * self.halo)

    def crop(self, array: np.ndarray) -> np.ndarray:
        """Cut the halo off an array computed over ``read_window``."""
        h = self.halo
        return array[..., h:h + self.height, h:h + self.width]


def iter_tiles(width: int, height: int, tile_size: int = DEFAULT_TILE,
               halo: int = 0) -> Iterator[Tile]:
    for y0 in range(0, height, tile_size):
        for x0 in range(0, width, tile_size):
            yield Tile(x0, y0, min(tile_size, width - x0), min(tile_size, height - y0), halo)


def whole_block_tile(tile_size: int, multiple: int = 1) -> int:
    """``tile_size`` rounded to the nearest multiple of ``multiple`` and of 16, so that the
    output GeoTIFF can use the tile as its block size (``process_files``): every tile then
    writes whole blocks and no half-written block waits in GDAL's cache. A tile smaller than
    one such step is only rounded up to a multiple of ``multiple`` (default blocks then)."""
    step = math.lcm(int(multiple), OUTPUT_BLOCK_MULTIPLE)
    if tile_size < step:
        return -(-int(tile_size) // int(multiple)) * int(multiple)
    return round(int(tile_size) / step) * step


def tile_count(width: int, height: int, tile_size: int = DEFAULT_TILE) -> int:
    return -(-width // tile_size) * -(-height // tile_size)


def sample_windows(shape: Tuple[int, int], window: int = SAMPLE_WINDOW,
                   max_windows: int = SAMPLE_MAX_WINDOWS,
                   align: int = 1) -> List[Tuple[int, int, int, int]]:
    """Windows (y0, x0, h, w) spread over an image of ``shape`` (rows, cols), starting on
    multiples of ``align``: the whole image when it is small, else ``max_windows`` windows
    of ``window`` pixels (global statistics and training with bounded memory)."""
    rows, cols = shape
    if rows * cols <= window * window * max_windows:
        return [(0, 0, rows, cols)]
    n = int(np.ceil(np.sqrt(max_windows)))
    ys = np.linspace(0, max(rows - window, 0), n).astype(int) // align * align
    xs = np.linspace(0, max(cols - window, 0), n).astype(int) // align * align
    return [(int(y), int(x), min(window, rows), min(window, cols)) for y in ys for x in xs]


def check_canceled(is_canceled: Optional[Callable[[], bool]]) -> None:
    """Raise Canceled when the user asked to stop (``is_canceled`` may be None)."""
    if is_canceled is not None and is_canceled():
        raise Canceled()


def no_progress(_fraction: float) -> None:
    pass


def never_canceled() -> bool:
    return False


class TileProgress:
    """Progress that moves inside a tile too: give ``tile_done`` to the tiled driver (it
    reports whole tiles) and call ``step`` from the method after each of the
    ``steps_per_tile`` parts of a tile (e.g. bands), so a one-tile scene does not sit still."""

    def __init__(self, progress: Callable[[float], None], tiles: int, steps_per_tile: int):
        self.progress, self.tiles, self.steps_per_tile = progress, tiles, max(1, steps_per_tile)
        self.tiles_done = self.steps_done = 0

    def tile_done(self, fraction: float) -> None:
        self.tiles_done, self.steps_done = round(fraction * self.tiles), 0
        self.progress(fraction)

    def step(self) -> None:
        self.steps_done = min(self.steps_done + 1, self.steps_per_tile)
        self.progress((self.tiles_done + self.steps_done / self.steps_per_tile) / self.tiles)


class ArrayOutput:
    """An in-memory output with the ``write`` of ``raster.AtomicGeoTiff`` (NaN until
    written), for running the tiled driver over arrays."""

    def __init__(self, shape):
        self.array = np.full(shape, np.nan, np.float32)

    def write(self, values: np.ndarray, x0: int = 0, y0: int = 0) -> None:
        bands, rows, cols = values.shape
        self.array[:, y0:y0 + rows, x0:x0 + cols] = values


@dataclass(frozen=True)
class TileWork:
    """The work of one tile of ``process_tiled``: every input's window of the tile (grown
    by the halo), ``function`` over them, NaN where an input is invalid, cropped to the tile
    (float32). Picklable when ``function`` and the sources are (a ``RasterSource``, a
    module-level callable): what a cluster sends to its workers, once per run."""
    inputs: Tuple[Optional[raster.RasterSource], ...]
    function: Callable[..., np.ndarray]

    def __call__(self, tile: Tile) -> np.ndarray:
        arrays = [None if source is None else source.window(*tile.read_window)
                  for source in self.inputs]
        result = tile.crop(self.function(*arrays))
        present = [tile.crop(a) for a in arrays if a is not None]
        if present:     # over the tile only: the halo is cut off anyway
            result = np.where(raster.valid_mask(*present), result, np.nan)
        return result.astype(np.float32)


# (work, tiles, is_canceled) -> (tile, work(tile)) of every tile, in any order; ``work`` is
# a picklable callable (a ``TileWork``, or any module-level one); closing the iterator early
# (an error, a cancel) stops the tiles still to come
TileMap = Callable[[Callable[[Tile], Any], Sequence[Tile], Callable[[], bool]],
                   Iterator[Tuple[Tile, Any]]]


def map_in_process(work: Callable[[Tile], Any], tiles: Sequence[Tile],
                   is_canceled: Callable[[], bool] = never_canceled
                   ) -> Iterator[Tuple[Tile, Any]]:
    """The tiles one after another in this process (``TileMap``), the heap's free pages
    handed back before the first (what the method's preparation freed) and after each."""
    release_free_memory()
    for tile in tiles:
        check_canceled(is_canceled)
        yield tile, work(tile)
        release_free_memory()


def process_tiled(inputs: Sequence[Optional[raster.RasterSource]], output,
                  function: Callable[..., np.ndarray], halo: int = 0,
                  tile_size: int = DEFAULT_TILE,
                  progress: Callable[[float], None] = no_progress,
                  is_canceled: Callable[[], bool] = never_canceled,
                  tile_map: Optional[TileMap] = None) -> None:
    """Stream the inputs tile by tile through ``function`` into ``output``.

    ``inputs``: sources with ``width``, ``height`` and ``window(x0, y0, width, height)``
    (``raster.RasterSource``, ``raster.ArraySource``; None for an absent input), all of one
    grid. ``output``: anything with ``write(values, x0, y0)`` (``raster.AtomicGeoTiff``,
    ``ArrayOutput``). ``function(*arrays)`` receives one ``(bands, rows, cols)`` array per
    input (None for an input given as None) covering the tile plus its halo and returns the
    result over the same window; pixels invalid in any input become NaN in the output.
    ``tile_map`` computes the tiles (``TileMap``): None = one after another in this process
    (``map_in_process``); ``core.cluster`` gives one that computes them on Dask workers.
    """
    first = next(source for source in inputs if source is not None)
    tiles = list(iter_tiles(first.width, first.height, tile_size, halo))
    stream_tiles(TileWork(tuple(inputs), function), tiles,
                 lambda tile, values: output.write(values, tile.x0, tile.y0), progress,
                 is_canceled, tile_map)


def stream_tiles(work: Callable[[Tile], Any], tiles: Sequence[Tile],
                 write: Callable[[Tile, Any], None],
                 progress: Callable[[float], None] = no_progress,
                 is_canceled: Callable[[], bool] = never_canceled,
                 tile_map: Optional[TileMap] = None) -> None:
    """The streaming loop: ``work`` over ``tiles``, computed by ``tile_map`` (None: here,
    one after another), each result handed to ``write(tile, result)`` in this process as it
    comes, progress per tile; ``Canceled`` on a cancel, even during the last tile."""
    results = (tile_map or map_in_process)(work, tiles, is_canceled)
    with streaming_gdal_settings(), closing(results):
        for done, (tile, result) in enumerate(results, 1):
            write(tile, result)
            progress(done / len(tiles))
        check_canceled(is_canceled)     # a cancel during the last tile publishes nothing


def process_files(inputs: Sequence[Optional[str]], output: str, like: str,
                  function: Callable[..., np.ndarray], halo: int = 0,
                  tile_size: int = DEFAULT_TILE, bands: Optional[Sequence[int]] = None,
                  progress: Callable[[float], None] = no_progress,
                  is_canceled: Callable[[], bool] = never_canceled) -> str:
    """``process_tiled`` from GeoTIFF paths (None for an absent input) into ``output``,
    encoded like the raster ``like`` (the fine input) with its band names."""
    info = raster.check_same_grid(like, inputs, same_bands=False)
    sources = [None if p is None else raster.RasterSource(p, bands) for p in inputs]
    return write_tiled(sources, output, info, function, halo, tile_size, bands, progress,
                       is_canceled)


def write_tiled(sources: Sequence[Optional[raster.RasterSource]],
                output: Union[str, Sequence[str]], like: raster.RasterInfo,
                function: Callable[..., np.ndarray], halo: int = 0,
                tile_size: int = DEFAULT_TILE, bands: Optional[Sequence[int]] = None,
                progress: Callable[[float], None] = no_progress,
                is_canceled: Callable[[], bool] = never_canceled,
                tile_map: Optional[TileMap] = None) -> str:
    """``process_tiled`` from open sources into the GeoTIFF ``output`` (atomically),
    encoded like the raster ``like`` with its band names (``bands``: the 1-based bands
    the sources read). ``output`` a list of paths: ``function`` returns their bands one
    after the other (``band_count`` each), written alike; all appear or none."""
    paths = [output] if isinstance(output, str) else list(output)
    band_count = len(bands) if bands else like.band_count
    names = [like.band_names[b - 1] for b in bands] if bands else list(like.band_names)
    block = tile_size if tile_size % OUTPUT_BLOCK_MULTIPLE == 0 else None
    with ExitStack() as stack:
        outs = [stack.enter_context(raster.AtomicGeoTiff(
            path, like.grid, band_count, raster.OutputEncoding.like(like), names, block))
            for path in paths]
        process_tiled(sources, outs[0] if len(outs) == 1 else _LayerOutputs(outs), function,
                      halo, tile_size, progress, is_canceled, tile_map)
    return paths[0]


class _LayerOutputs:
    """Writes consecutive groups of bands of one result into several outputs."""

    def __init__(self, outputs: Sequence):
        self.outputs = outputs

    def write(self, values: np.ndarray, x0: int = 0, y0: int = 0) -> None:
        per_output = values.shape[0] // len(self.outputs)
        for i, out in enumerate(self.outputs):
            out.write(values[i * per_output:(i + 1) * per_output], x0, y0)


@contextmanager
def streaming_gdal_settings(cache_limit: int = GDAL_CACHE_BYTES):
    """While streaming tiles: cap GDAL's block cache, so memory depends on the tile size
    only, and let GDAL decode the blocks of one read on all cores (torch is idle then)."""
    previous_cache = gdal.GetCacheMax()
    previous_threads = gdal.GetConfigOption("GDAL_NUM_THREADS")
    gdal.SetCacheMax(min(previous_cache, cache_limit))
    gdal.SetConfigOption("GDAL_NUM_THREADS", previous_threads or "ALL_CPUS")
    try:
        yield
    finally:
        gdal.SetCacheMax(previous_cache)
        gdal.SetConfigOption("GDAL_NUM_THREADS", previous_threads)


def _glibc():
    """The C library when it has glibc's ``mallopt`` and ``malloc_trim``, else None."""
    name = ctypes.util.find_library("c")
    try:
        library = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if library is None or not all(hasattr(library, f) for f in ("mallopt", "malloc_trim")):
        return None         # not glibc
    return library


_GLIBC = _glibc()
_MALLOC_TRIM = _GLIBC.malloc_trim if _GLIBC is not None else None
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3          # glibc's mallopt parameters
TILE_MMAP_THRESHOLD = 32 << 20      # glibc's own ceiling for its dynamic mmap threshold


def tune_allocator_for_tiles() -> None:
    """Let glibc reuse the heap for a tile's temporaries (glibc itself does, once it has
    seen them freed): allocations below ``TILE_MMAP_THRESHOLD`` from the heap, and no trim
    before twice that is free (``release_free_memory`` trims after each tile).

    Dask's nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which fixes
    glibc's thresholds at their minimum: every temporary of more than 128 KB is then a
    fresh ``mmap``, faulted in page by page and unmapped on free. On a 1000² series that
    took a worker 18 s of system time for 12 s of arithmetic (in process: 2 s)."""
    if _GLIBC is not None:
        _GLIBC.mallopt(M_MMAP_THRESHOLD, TILE_MMAP_THRESHOLD)
        _GLIBC.mallopt(M_TRIM_THRESHOLD, 2 * TILE_MMAP_THRESHOLD)


def release_free_memory() -> None:
    """Hand the heap's free pages back to the system (glibc ``malloc_trim``; else nothing).

    Every tile allocates and frees the same temporaries; glibc would keep the freed memory,
    fragmented, and the peak would creep up with the number of tiles (the raster size)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
