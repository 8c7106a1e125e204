"""Machinery of the moving-window methods (``starfm``, ``fsdaf``): validity and NaN padding,
the offsets of a window, chunked multi-threaded loops over a tile, and the strip-by-strip
statistics passes over whole arrays or GeoTIFFs.
"""
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import raster, tiling

STRIP_ROWS = 256  # rows per strip of the whole-image statistics passes
# threads running the window chunks of a tile (numpy and torch release the GIL in their
# array loops); STFUSION_THREADS overrides
THREADS = max(1, int(os.environ.get("STFUSION_THREADS", 0)) or min(2, os.cpu_count() or 1))


def check_shapes(*images: Optional[np.ndarray]) -> Tuple[int, int, int]:
    present = [a for a in images if a is not None]
    shape = present[0].shape
    if len(shape) != 3:
        raise ValueError(f"expected (bands, rows, cols) arrays, got shape {shape}")
    for a in present[1:]:
        if a.shape != shape:
            raise ValueError(f"input shapes differ: {a.shape} vs {shape}")
    return shape


def as_float32(image: Optional[np.ndarray]) -> Optional[np.ndarray]:
    return None if image is None else np.asarray(image, dtype=np.float32)


def valid_mask(*images: Optional[np.ndarray]) -> np.ndarray:
    """Pixels where every band of every (non-None) image is finite."""
    return raster.valid_mask(*[a for a in images if a is not None])


def nan_pad(image: np.ndarray, before_y: int, after_y: Optional[int] = None,
            before_x: Optional[int] = None, after_x: Optional[int] = None) -> np.ndarray:
    """Pad the last two axes with NaN (a single number pads all sides alike)."""
    after_y = before_y if after_y is None else after_y
    before_x = before_y if before_x is None else before_x
    after_x = before_x if after_x is None else after_x
    if before_y == after_y == before_x == after_x == 0:
        return image
    widths = [(0, 0)] * (image.ndim - 2) + [(before_y, after_y), (before_x, after_x)]
    return np.pad(image, widths, mode="constant", constant_values=np.nan)


def window_offsets(radius: int) -> List[Tuple[int, int, float]]:
    """(dy, dx, distance) of every pixel of a (2r+1) x (2r+1) window, row-major."""
    return [(dy, dx, float(np.hypot(dy, dx)))
            for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]


def chunks(height: int, width: int, size: int) -> Iterator[Tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of square chunks covering a height x width region."""
    for y0 in range(0, height, size):
        for x0 in range(0, width, size):
            yield y0, min(y0 + size, height), x0, min(x0 + size, width)


def run_chunks(function: Callable[[int, int, int, int], None], height: int, width: int,
               size: int, is_canceled: Optional[Callable[[], bool]] = None,
               threads: Optional[int] = None) -> None:
    """Call ``function(y0, y1, x0, x1)`` on every chunk of a height x width region, on a
    few threads (the chunks must write disjoint outputs). Checks for cancel per chunk."""
    boxes = list(chunks(height, width, size))
    threads = min(THREADS if threads is None else threads, len(boxes))

    def one(box):
        tiling.check_canceled(is_canceled)
        function(*box)

    if threads <= 1:
        for box in boxes:
            one(box)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(one, box) for box in boxes]:
            future.result()


class BandMoments:
    """Streaming per-band count / mean / std (float64 sums) over valid pixels."""

    def __init__(self, bands: int):
        self.n = 0
        self.s1 = np.zeros(bands, np.float64)
        self.s2 = np.zeros(bands, np.float64)

    def add(self, image: np.ndarray, valid: np.ndarray) -> None:
        values = image[:, valid].astype(np.float64)
        if values.size:
            self.n += values.shape[1]
            self.s1 += values.sum(axis=1)
            self.s2 += (values * values).sum(axis=1)

    @property
    def mean(self) -> np.ndarray:
        return self.s1 / max(self.n, 1)

    @property
    def std(self) -> np.ndarray:
        if self.n == 0:
            return np.zeros_like(self.s1)
        mean = self.s1 / self.n
        return np.sqrt(np.maximum(self.s2 / self.n - mean * mean, 0.0))


def strips(sources: Sequence[Optional[object]], rows: int = STRIP_ROWS
           ) -> Iterator[Tuple[int, int, List[Optional[np.ndarray]]]]:
    """(y0, y1, arrays) of strips of ``rows`` whole rows of every source (None stays None):
    the whole-image statistics passes, memory bounded by one strip."""
    first = next(source for source in sources if source is not None)
    for y0 in range(0, first.height, rows):
        y1 = min(y0 + rows, first.height)
        yield y0, y1, [None if source is None else source.window(0, y0, first.width, y1 - y0)
                       for source in sources]


def subsample_stride(height: int, width: int, max_pixels: int) -> int:
    """Stride (same along rows and columns) so that about max_pixels pixels are kept."""
    return max(1, int(np.ceil(np.sqrt(height * width / float(max_pixels)))))
