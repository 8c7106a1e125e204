"""GeoTIFF input/output on plain GDAL: reflectance arrays, grids and atomic writing.

Arrays are float32 ``(bands, rows, cols)`` in physical units (GDAL scale and offset
applied) with NaN where a band is nodata. Inputs are only ever opened read-only.
"""
import datetime as dt
import math
import os
import shutil
import threading
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from osgeo import gdal, osr

from . import atomic
from .errors import InputError

gdal.UseExceptions()

GTIFF_OPTIONS = ["TILED=YES", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER", "NUM_THREADS=2"]


class RasterError(ValueError):
    """An input raster that cannot be used; the message says why."""


@dataclass(frozen=True)
class Grid:
    width: int
    height: int
    geotransform: Tuple[float, ...]
    crs_wkt: str

    @property
    def pixel_size(self) -> Tuple[float, float]:
        gt = self.geotransform
        return math.hypot(gt[1], gt[4]), math.hypot(gt[2], gt[5])

    def mismatch(self, other: "Grid", tolerance: float = 1e-3) -> Optional[str]:
        """Return why ``other`` is not the same grid as this one, or None when it is."""
        if (self.width, self.height) != (other.width, other.height):
            return (f"size {other.width}x{other.height} differs from "
                    f"{self.width}x{self.height}")
        pixel = min(self.pixel_size)
        for a, b in zip(self.geotransform, other.geotransform):
            if abs(a - b) > tolerance * pixel:
                return (f"geotransform {tuple(round(v, 6) for v in other.geotransform)} "
                        f"differs from {tuple(round(v, 6) for v in self.geotransform)}")
        if not same_crs(self.crs_wkt, other.crs_wkt):
            return "coordinate reference system differs"
        return None


def same_crs(wkt_a: str, wkt_b: str) -> bool:
    if not wkt_a or not wkt_b:
        return not wkt_a and not wkt_b
    a, b = osr.SpatialReference(), osr.SpatialReference()
    a.ImportFromWkt(wkt_a)
    b.ImportFromWkt(wkt_b)
    return bool(a.IsSame(b))


@dataclass(frozen=True)
class RasterInfo:
    path: str
    grid: Grid
    band_count: int
    gdal_type: int
    nodata: Tuple[Optional[float], ...]
    scale: Tuple[float, ...]
    offset: Tuple[float, ...]
    band_names: Tuple[str, ...]


def open_dataset(path: str) -> gdal.Dataset:
    """Open read-only (a file this run has written but not yet published is read from its
    staged temporary file, see ``atomic.readable_path``)."""
    try:
        ds = gdal.Open(atomic.readable_path(str(path)), gdal.GA_ReadOnly)
    except RuntimeError as exc:
        raise RasterError(f"cannot open raster '{path}': {exc}") from exc
    if ds is None:
        raise RasterError(f"cannot open raster '{path}'")
    return ds


def raster_info(path: str) -> RasterInfo:
    ds = open_dataset(path)
    bands = [ds.GetRasterBand(i + 1) for i in range(ds.RasterCount)]
    if not bands:
        raise RasterError(no_bands_reason(path, ds))
    grid = Grid(ds.RasterXSize, ds.RasterYSize, tuple(ds.GetGeoTransform()),
                ds.GetProjection() or "")
    return RasterInfo(
        path=str(path),
        grid=grid,
        band_count=len(bands),
        gdal_type=bands[0].DataType,
        nodata=tuple(b.GetNoDataValue() for b in bands),
        scale=tuple(b.GetScale() or 1.0 for b in bands),
        offset=tuple(b.GetOffset() or 0.0 for b in bands),
        band_names=tuple(b.GetDescription() or f"band {i + 1}" for i, b in enumerate(bands)),
    )


def no_bands_reason(path: str, ds: gdal.Dataset, shown: int = 12) -> str:
    """Why a raster without bands cannot be used; a container (HDF, netCDF, GeoPackage)
    lists the subdatasets that can be given instead."""
    subdatasets = [name for name, _description in ds.GetSubDatasets()]
    if not subdatasets:
        return f"raster '{path}' has no bands"
    listed = "; ".join(subdatasets[:shown])
    more = f" and {len(subdatasets) - shown} more" if len(subdatasets) > shown else ""
    return (f"'{path}' is a container of {len(subdatasets)} subdatasets, not one image; "
            f"give one of them instead: {listed}{more} (or extract one to a GeoTIFF with "
            "gdal_translate)")


# a value this large is no measurement but an undeclared fill value (1e30, +-3.4e38): read
# as nodata, otherwise it would overflow the window sums of every neighbour
IMPLAUSIBLE_MAGNITUDE = 1e10
_IMPLAUSIBLE_SEEN = set()
_IMPLAUSIBLE_LOCK = threading.Lock()


def implausible_inputs_seen(clear: bool = True) -> set:
    """Paths in which ``read_window`` met values of ``IMPLAUSIBLE_MAGNITUDE`` or more (read
    as nodata) since the last call, for a warning."""
    with _IMPLAUSIBLE_LOCK:
        seen = set(_IMPLAUSIBLE_SEEN)
        if clear:
            _IMPLAUSIBLE_SEEN.clear()
    return seen


def read_window(path: str, x0: int = 0, y0: int = 0, width: Optional[int] = None,
                height: Optional[int] = None, bands: Optional[Sequence[int]] = None,
                extra_nodata: Sequence[float] = (),
                dataset: Optional[gdal.Dataset] = None) -> np.ndarray:
    """Read a window as float32 physical values with NaN at nodata.

    ``bands`` are 1-based band numbers (default: all). Windows reaching outside the raster
    are filled with NaN, so halo reads at the image border need no special cases.
    ``dataset``: ``path`` already open (``RasterSource``), else it is opened for this read.
    """
    ds = open_dataset(path) if dataset is None else dataset
    width = ds.RasterXSize - x0 if width is None else width
    height = ds.RasterYSize - y0 if height is None else height
    bands = list(bands) if bands else list(range(1, ds.RasterCount + 1))
    rx0, ry0 = max(x0, 0), max(y0, 0)
    rx1, ry1 = min(x0 + width, ds.RasterXSize), min(y0 + height, ds.RasterYSize)
    inside = rx0 == x0 and ry0 == y0 and rx1 == x0 + width and ry1 == y0 + height
    out = np.empty((len(bands), height, width), np.float32) if inside \
        else np.full((len(bands), height, width), np.nan, dtype=np.float32)
    if rx1 <= rx0 or ry1 <= ry0:
        return out
    # one read of all bands: a pixel-interleaved block is decoded once, not once per band
    raws = ds.ReadAsArray(rx0, ry0, rx1 - rx0, ry1 - ry0, band_list=bands)
    raws = raws.reshape(len(bands), ry1 - ry0, rx1 - rx0)
    for i, (number, raw) in enumerate(zip(bands, raws)):
        values = out[i, ry0 - y0:ry1 - y0, rx0 - x0:rx1 - x0]
        if _physical_values(raw, ds.GetRasterBand(number), extra_nodata, values):
            with _IMPLAUSIBLE_LOCK:
                _IMPLAUSIBLE_SEEN.add(str(path))
    return out


def _physical_values(raw: np.ndarray, band: gdal.Band, extra_nodata: Sequence[float],
                     values: np.ndarray) -> bool:
    """Stored values ``raw`` as physical float32 ``values`` (in place: raw x scale + offset,
    NaN at nodata and at implausible magnitudes), in as few passes as numpy allows (this is
    most of a tile read's time after decoding). Whether an implausible value was met."""
    scale, offset = np.float32(band.GetScale() or 1.0), np.float32(band.GetOffset() or 0.0)
    np.copyto(values, raw, casting="unsafe")
    values *= scale
    values += offset
    nodata = [v for v in (band.GetNoDataValue(), *extra_nodata)
              if v is not None and np.isfinite(v)]
    for value in nodata:
        np.putmask(values, raw == value, np.float32(np.nan))
    if raw.dtype.kind == "f":
        np.putmask(values, ~np.isfinite(raw), np.float32(np.nan))
    elif raw.dtype.kind in "iu" and \
            _largest_magnitude(raw.dtype, scale, offset) < IMPLAUSIBLE_MAGNITUDE:
        return False        # no stored integer can reach an implausible value
    implausible = np.abs(values) >= IMPLAUSIBLE_MAGNITUDE
    if not implausible.any():
        return False
    values[implausible] = np.nan
    return True


def _largest_magnitude(dtype: np.dtype, scale: float, offset: float) -> float:
    """The largest physical magnitude an integer type can store with ``scale`` and
    ``offset``."""
    limits = np.iinfo(dtype)
    return max(abs(float(limits.min)), abs(float(limits.max))) * abs(float(scale)) \
        + abs(float(offset))


class RasterSource:
    """One input raster opened once (read-only), serving windows: float32 reflectance,
    NaN at nodata and outside the raster (a tile's halo at the image border).

    Picklable (the open dataset is not pickled; a copy reopens the file on its first read),
    so a source can travel to another process with a job. A GDAL dataset must not serve two
    threads at once: each thread reading a source opens the file once for itself (a Dask
    worker's threads share the objects it was sent)."""

    def __init__(self, path: str, bands: Optional[Sequence[int]] = None,
                 date: Optional[dt.date] = None):
        self.path = str(path)
        self.bands = list(bands) if bands else None
        self.date = date    # the acquisition date when the caller knows it (a DATES table)
        self._opened = threading.local()
        dataset = self._dataset()
        self.width, self.height = dataset.RasterXSize, dataset.RasterYSize
        self.band_count = len(self.bands) if self.bands else dataset.RasterCount

    def _dataset(self) -> gdal.Dataset:
        """The file opened by this thread (opened on its first read)."""
        if getattr(self._opened, "dataset", None) is None:
            self._opened.dataset = open_dataset(self.path)
        return self._opened.dataset

    def window(self, x0: int, y0: int, width: int, height: int) -> np.ndarray:
        """(bands, height, width) float32 from global column ``x0``, row ``y0`` (either may
        be negative)."""
        return read_window(self.path, x0, y0, width, height, self.bands,
                           dataset=self._dataset())

    def __getstate__(self):
        return {name: value for name, value in self.__dict__.items() if name != "_opened"}

    def __setstate__(self, state):
        self.__dict__.update(state, _opened=threading.local())


class ArraySource:
    """An in-memory ``(bands, rows, cols)`` image with the window interface of
    ``RasterSource`` (NaN outside the array)."""

    def __init__(self, array: np.ndarray):
        if np.ndim(array) != 3:
            raise ValueError(f"expected a (bands, rows, cols) array, got shape "
                             f"{np.shape(array)}")
        self.array = np.asarray(array, dtype=np.float32)
        self.band_count, self.height, self.width = self.array.shape

    def window(self, x0: int, y0: int, width: int, height: int) -> np.ndarray:
        out = np.full((self.band_count, height, width), np.nan, np.float32)
        rx0, ry0 = max(x0, 0), max(y0, 0)
        rx1, ry1 = min(x0 + width, self.width), min(y0 + height, self.height)
        if rx1 > rx0 and ry1 > ry0:
            out[:, ry0 - y0:ry1 - y0, rx0 - x0:rx1 - x0] = self.array[:, ry0:ry1, rx0:rx1]
        return out


class MaskedSource:
    """A source whose pixels are NaN where a mask raster is not 0 (clouds, shadows; the
    mask's nodata and pixels outside it count as masked): a fine image with its cloud mask.
    Picklable like its two sources."""

    def __init__(self, source, mask):
        self.source, self.mask = source, mask
        self.width, self.height = source.width, source.height
        self.band_count = source.band_count

    def window(self, x0: int, y0: int, width: int, height: int) -> np.ndarray:
        values = self.source.window(x0, y0, width, height)
        values[:, ~(self.mask.window(x0, y0, width, height)[0] == 0)] = np.nan
        return values


def read_raster(path: str, bands: Optional[Sequence[int]] = None) -> np.ndarray:
    """Read a whole raster (small rasters, tests, training); see ``read_window``."""
    return read_window(path, bands=bands)


def check_same_grid(reference: str, others, same_bands: bool = True) -> RasterInfo:
    """Raise RasterError unless every path in ``others`` (None skipped) is on the grid of
    ``reference`` (and, with ``same_bands``, has its band count); returns its info."""
    info = raster_info(reference)
    for path in others:
        if path is None:
            continue
        other = raster_info(path)
        why = info.grid.mismatch(other.grid)
        if why:
            raise RasterError(f"'{path}' is not on the grid of '{reference}': {why}")
        if same_bands and other.band_count != info.band_count:
            raise RasterError(f"'{path}' has {other.band_count} bands, "
                              f"'{reference}' has {info.band_count}")
    return info


RESAMPLE_HINT = ("Bring the coarse image onto the fine grid first with "
                 "'stfusion:resample_modis' (REFERENCE = the fine image).")


def require_same_grid(reference: Tuple[str, str], others: Dict[str, Optional[str]],
                      hint: str = RESAMPLE_HINT) -> None:
    """InputError unless every raster of ``others`` (name -> path, None skipped) is on the
    grid of ``reference`` (name, path), naming the one that is not."""
    reference_name, reference_path = reference
    grid = raster_info(reference_path).grid
    for name, path in others.items():
        problem = None if path is None else grid.mismatch(raster_info(path).grid)
        if problem:
            raise InputError(None, f"Parameter {name} is not on the grid of {reference_name}: "
                                   f"{problem}. " + hint)


def require_band_counts(paths: Dict[str, Optional[str]], expected: int, what: str) -> None:
    """InputError unless every raster of ``paths`` (name -> path, None skipped) has
    ``expected`` bands (those of ``what``)."""
    for name, path in paths.items():
        count = None if path is None else raster_info(path).band_count
        if count is not None and count != expected:
            raise InputError(None, f"Parameter {name} has {count} bands but {what} has "
                                   f"{expected}; give images with the same bands in the same "
                                   "order.")


def valid_mask(*images: np.ndarray) -> np.ndarray:
    """Pixels where every band of every image is finite."""
    mask = np.ones(images[0].shape[-2:], dtype=bool)
    for image in images:
        mask &= np.isfinite(image).all(axis=0)
    return mask


class DataCheck:
    """Whether named co-registered inputs hold data, from the windows or strips a method
    reads anyway: ``check()`` raises ``InputError`` naming the first input without a valid
    pixel, or saying that the inputs share none. Stops looking once a pixel is valid in all
    of them."""

    def __init__(self, names: Sequence[str]):
        self.names = list(names)
        self.has_data: dict = {}        # name -> a valid pixel seen, for the inputs given
        self.common = False

    def add(self, *images: Optional[np.ndarray]) -> None:
        if self.common:
            return
        present = [(n, a) for n, a in zip(self.names, images) if a is not None]
        for name, image in present:
            self.has_data[name] = self.has_data.get(name) or bool(valid_mask(image).any())
        self.common = bool(valid_mask(*(a for _n, a in present)).any())

    def check(self) -> None:
        if self.common:
            return
        given = [n for n in self.names if n in self.has_data]
        for name in given:
            if not self.has_data[name]:
                raise InputError(name, "no pixel holds data: every pixel is nodata or NaN (or "
                                       f"of magnitude {IMPLAUSIBLE_MAGNITUDE:g} or more); give "
                                       "an image with data.")
        raise InputError(given[0], f"no pixel is valid in all of {', '.join(given)} at once: "
                                   "their data do not overlap; give images that cover the "
                                   "same area.")


@dataclass(frozen=True)
class OutputEncoding:
    """How reflectance is stored on disk: data type, nodata, scale and offset."""
    gdal_type: int = gdal.GDT_Float32
    nodata: float = float("nan")
    scale: float = 1.0
    offset: float = 0.0

    @classmethod
    def like(cls, info: RasterInfo) -> "OutputEncoding":
        """The encoding of an input raster, with a nodata value even if it declared none."""
        if info.gdal_type in (gdal.GDT_Float32, gdal.GDT_Float64):
            nodata = info.nodata[0] if info.nodata[0] is not None else float("nan")
            return cls(info.gdal_type, nodata, info.scale[0], info.offset[0])
        nodata = info.nodata[0]
        if nodata is None:
            nodata = _integer_nodata(info.gdal_type)
        return cls(info.gdal_type, float(nodata), info.scale[0], info.offset[0])

    def encode(self, values: np.ndarray) -> np.ndarray:
        stored = (values - np.float32(self.offset)) / np.float32(self.scale)
        invalid = ~np.isfinite(stored)
        if self.gdal_type in (gdal.GDT_Float32, gdal.GDT_Float64):
            return np.where(invalid, np.float32(self.nodata), stored).astype(np.float32)
        info = np.iinfo(_NUMPY_TYPES[self.gdal_type])
        # keep valid pixels off the nodata value so they do not vanish when read back
        low = info.min + 1 if self.nodata == info.min else info.min
        high = info.max - 1 if self.nodata == info.max else info.max
        stored = np.clip(np.rint(np.where(invalid, 0, stored)), low, high)
        return np.where(invalid, self.nodata, stored).astype(_NUMPY_TYPES[self.gdal_type])


_NUMPY_TYPES = {gdal.GDT_Byte: np.uint8, gdal.GDT_UInt16: np.uint16, gdal.GDT_Int16: np.int16,
                gdal.GDT_UInt32: np.uint32, gdal.GDT_Int32: np.int32}


def _integer_nodata(gdal_type: int) -> float:
    info = np.iinfo(_NUMPY_TYPES.get(gdal_type, np.int32))
    return float(info.min if info.min < 0 else info.max)


class WriteError(OSError):
    """An output that could not be written (full disk, vanished folder); ``path`` is the
    target. The message gives GDAL's reason and the free space left on that disk."""

    def __init__(self, path: str, reason):
        try:
            free = shutil.disk_usage(os.path.dirname(path)).free
            space = f"; {free / 2 ** 20:.1f} MB free on that disk"
        except OSError:
            space = ""
        super().__init__(f"cannot write '{path}': {reason}{space}")
        self.path = path


class AtomicGeoTiff:
    """A GeoTIFF written block by block into a temporary file, renamed into place on success.

    Use as a context manager: leaving it with an exception (cancel included), or a write
    error while closing (e.g. a full disk), deletes the temporary file, so no partial output
    ever appears at ``path``. Inside ``atomic.run_outputs`` the finished file is staged and
    published with the run's other outputs.
    """

    def __init__(self, path: str, grid: Grid, band_count: int,
                 encoding: OutputEncoding = OutputEncoding(),
                 band_names: Sequence[str] = (), block_size: Optional[int] = None):
        """``block_size`` (a multiple of 16): the GeoTIFF's blocks; writers that write whole
        blocks (tiles of this size) never leave a partly written block in GDAL's cache."""
        self.path = os.path.abspath(path)
        self.encoding = encoding
        self.temp_path = atomic.temporary_beside(self.path, ".part.tif")
        try:
            self.ds = self._create(grid, band_count, band_names, block_size)
        except RuntimeError as exc:
            reason = str(exc)
        except BaseException:
            atomic.discard(self.temp_path)
            raise
        else:
            return
        atomic.discard(self.temp_path)
        raise WriteError(self.path, reason)    # outside the handler: GDAL's frames are freed

    def _create(self, grid: Grid, band_count: int, band_names: Sequence[str],
                block_size: Optional[int]) -> gdal.Dataset:
        driver = gdal.GetDriverByName("GTiff")
        options = list(GTIFF_OPTIONS)
        if block_size:
            options += [f"BLOCKXSIZE={min(block_size, _round_up(grid.width, 16))}",
                        f"BLOCKYSIZE={min(block_size, _round_up(grid.height, 16))}"]
        ds = driver.Create(self.temp_path, grid.width, grid.height, band_count,
                           self.encoding.gdal_type, options)
        try:
            ds.SetGeoTransform(grid.geotransform)
            if grid.crs_wkt:
                ds.SetProjection(grid.crs_wkt)
            for i in range(band_count):
                band = ds.GetRasterBand(i + 1)
                band.SetNoDataValue(self.encoding.nodata)
                if self.encoding.scale != 1.0 or self.encoding.offset != 0.0:
                    band.SetScale(self.encoding.scale)
                    band.SetOffset(self.encoding.offset)
                if i < len(band_names):
                    band.SetDescription(band_names[i])
        except BaseException:
            band = ds = None     # close now: a traceback would keep the deleted file open
            raise
        return ds

    def write(self, values: np.ndarray, x0: int = 0, y0: int = 0) -> None:
        """Write reflectance ``(bands, rows, cols)`` with NaN as nodata at (x0, y0)."""
        try:
            self.ds.WriteArray(self.encoding.encode(values), x0, y0)
            return
        except RuntimeError as exc:
            reason = str(exc)
        # raised outside the handler: a kept traceback of GDAL's frames would keep the
        # dataset, and the deleted temporary file, open
        raise WriteError(self.path, reason)

    def __enter__(self) -> "AtomicGeoTiff":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        sidecar = self.temp_path + ".aux.xml"
        try:
            self._close(flush=exc_type is None)
            if exc_type is None:
                atomic.finish(self.temp_path, self.path)
                if os.path.exists(sidecar):
                    atomic.finish(sidecar, self.path + ".aux.xml")
        except BaseException:
            atomic.discard(self.temp_path, sidecar)
            raise
        if exc_type is not None:
            atomic.discard(self.temp_path, sidecar)

    def _close(self, flush: bool) -> None:
        """Close the dataset; with ``flush``, a write error GDAL reports while flushing or
        closing (it may only then find the disk full) raises ``WriteError``."""
        gdal.ErrorReset()
        reason = None
        try:
            if flush:
                self.ds.FlushCache()
        except RuntimeError as exc:
            reason = str(exc)
        finally:
            self.ds = None
        if flush and reason is None and gdal.GetLastErrorType() >= gdal.CE_Failure:
            reason = gdal.GetLastErrorMsg()
        if reason is not None:
            raise WriteError(self.path, reason)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def write_raster(path: str, values: np.ndarray, grid: Grid,
                 encoding: OutputEncoding = OutputEncoding(),
                 band_names: Sequence[str] = ()) -> str:
    """Write a whole array at once (atomically)."""
    with AtomicGeoTiff(path, grid, values.shape[0], encoding, band_names) as out:
        out.write(values)
    return path
