"""Bring raw MODIS onto the Landsat grid: band mapping, fill values, GDAL warping, co-registration.

Step 1 of the paper's pipeline. The MODIS file (any CRS and resolution, e.g. MOD09 500 m in
the sinusoidal projection, int16 x 0.0001 with fill -28672) is reprojected with GDAL's warper
onto exactly the grid of a reference fine image (same CRS, geotransform and size).

The warp runs tile by tile: each output tile is a small in-memory dataset on the reference
grid into which ``gdal.Warp`` resamples the MODIS bands (exact transformations, so a tiled
run equals a single warp); the tile is then converted to reflectance and written into an
``AtomicGeoTiff``, so memory stays bounded and nothing partial is left on error or cancel.

Co-registration (the paper's "maximising the correlation") estimates a sub-pixel shift of the
MODIS geotransform: the fine image is averaged onto a sub-grid aligned with the MODIS grid
(``k`` cells per coarse pixel); for every candidate shift of whole sub-grid cells the block
mean over a shifted coarse footprint simulates what MODIS would see, and the shift with the
highest correlation (mean Pearson r over the bands) wins; a coarse-to-fine search and a
parabolic fit through the peak give the sub-cell estimate.

Shift convention (``shift_x``, ``shift_y``, in coarse pixels): the correction *added* to the
MODIS pixel coordinates, along the MODIS columns (x, east for north-up rasters) and rows
(y, south for north-up rasters). The corrected geotransform places MODIS pixel (col, row)
where the original one placed (col + shift_x, row + shift_y). A MODIS file whose
georeference was moved by (+0.3, -0.2) pixels gives a correction of about (-0.3, +0.2).
"""
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
from osgeo import gdal, osr

from . import raster, scale_ratio
from .tiling import check_canceled, iter_tiles, never_canceled, no_progress, tile_count

gdal.UseExceptions()

METHODS = ("nearest", "bilinear", "bicubic", "cubicspline", "average", "lanczos")
GDAL_METHODS = {"nearest": "near", "bilinear": "bilinear", "bicubic": "cubic",
                "cubicspline": "cubicspline", "average": "average", "lanczos": "lanczos"}
# file band numbers of a 7-band MOD09 file giving Landsat blue, green, red, NIR, SWIR1, SWIR2
MOD09_BANDS = (3, 4, 1, 2, 6, 7)
MOD09_NAMES = ("blue", "green", "red", "nir", "swir1", "swir2")
MOD09_PRESET = "the MOD09 preset (bands 3,4,1,2,6,7 of a 7-band MOD09 file)"
MODIS_FILL = -28672
OUTPUT_TYPES = ("input", "float32")
DEFAULT_TILE = 512
ACQUISITION_DATE = "ACQUISITIONDATE"   # metadata item (YYYY-MM-DD) carried from the input
WARP_MEMORY_MB = 256
MAX_SHIFT = 1.5          # co-registration search radius, coarse pixels
MAX_COREG_WINDOW = 120   # co-registration uses at most this many coarse pixels per side
MIN_COREG_PIXELS = 25

BandSpec = Union[None, str, Sequence[int]]


class ResampleError(raster.RasterError):
    """Bad input for the resampling; ``parameter`` says which input is at fault
    ('modis', 'reference', 'overlap' (both), 'bands', 'nodata', 'method', 'output_type',
    'coregister')."""

    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter


@dataclass
class ShiftEstimate:
    shift_x: float              # correction, coarse pixels along MODIS columns
    shift_y: float              # correction, coarse pixels along MODIS rows
    correlation: float          # mean Pearson r over the bands at the estimated shift
    correlation_unshifted: float
    pixels: int                 # coarse pixels used
    at_limit: bool = False      # the peak lies on the edge of the search window


@dataclass
class ResampleResult:
    output_path: str
    shift_x: float = 0.0
    shift_y: float = 0.0
    bands: Tuple[int, ...] = ()
    band_names: Tuple[str, ...] = ()
    method: str = "bicubic"
    nodata: Tuple[Optional[float], ...] = ()
    coregistration: Optional[ShiftEstimate] = None
    acquisition_date: str = ""          # the input's ACQUISITIONDATE, copied to the output
    source_pixel_size: float = 0.0      # MODIS pixel in reference grid units (metadata)
    seconds: float = 0.0
    log: list = field(default_factory=list)


# -- input checks -------------------------------------------------------------------------
def parse_bands(spec: BandSpec, band_count: int) -> Tuple[int, ...]:
    """1-based MODIS file band numbers from a preset or list.

    ``spec``: None or "mod09" (bands 3,4,1,2,6,7), "same" (all bands in file order), a
    comma-separated string "3,4,1,2,6,7" or a sequence of ints.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "mod09")):
        bands, what = MOD09_BANDS, MOD09_PRESET
    elif isinstance(spec, str) and spec.strip().lower() == "same":
        return tuple(range(1, band_count + 1))
    else:
        what = "the band list"
        if isinstance(spec, str):
            try:
                bands = tuple(int(part) for part in spec.replace(";", ",").split(",")
                              if part.strip())
            except ValueError:
                raise ResampleError("bands", f"band list '{spec}' is not a comma-separated "
                                             "list of 1-based band numbers such as "
                                             "'3,4,1,2,6,7'")
        else:
            bands = tuple(int(b) for b in spec)
            if bands == MOD09_BANDS:
                what = MOD09_PRESET
        if not bands:
            raise ResampleError("bands", "the band list is empty; give 1-based band numbers "
                                         "such as '3,4,1,2,6,7'")
    bad = [b for b in bands if b < 1 or b > band_count]
    if bad:
        zero = " (band numbers start at 1)" if any(b < 1 for b in bad) else ""
        raise ResampleError(
            "bands", f"{what} names band(s) {', '.join(map(str, bad))} but the MODIS file has "
                     f"{band_count} band(s){zero}; use 'same order' or list only bands "
                     f"1..{band_count}")
    return tuple(bands)


def band_names_for(bands: Sequence[int], info: raster.RasterInfo) -> Tuple[str, ...]:
    if tuple(bands) == MOD09_BANDS and info.band_count >= 7:
        return MOD09_NAMES
    return tuple(info.band_names[b - 1] for b in bands)


def source_nodata(info: raster.RasterInfo, bands: Sequence[int],
                  nodata: Optional[float]) -> Tuple[Optional[float], ...]:
    """The fill value of each selected band: ``nodata`` if given, else the file's, else the
    MODIS fill -28672 (where the data type can hold it), else NaN for float data."""
    floating = info.gdal_type in (gdal.GDT_Float32, gdal.GDT_Float64)
    values = []
    for b in bands:
        if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
            value = float(nodata)
        elif info.nodata[b - 1] is not None:
            value = float(info.nodata[b - 1])
        elif floating or info.gdal_type in (gdal.GDT_Int16, gdal.GDT_Int32):
            value = float(MODIS_FILL)
        else:
            value = None
        values.append(value)
    return tuple(values)


def _transform(source_wkt: str, target_wkt: str) -> osr.CoordinateTransformation:
    source, target = osr.SpatialReference(), osr.SpatialReference()
    source.ImportFromWkt(source_wkt)
    target.ImportFromWkt(target_wkt)
    source.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    target.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return osr.CoordinateTransformation(source, target)


def _pixel_to_map(gt, col, row):
    return gt[0] + col * gt[1] + row * gt[2], gt[3] + col * gt[4] + row * gt[5]


def source_pixel_size(modis: raster.RasterInfo, reference: raster.RasterInfo) -> float:
    """The MODIS pixel size in the units of the reference grid: the geometric mean of the
    two sides of the central MODIS pixel carried into the reference CRS (a sinusoidal 463 m
    pixel is about 463 m in UTM, whatever its shear)."""
    gt = modis.grid.geotransform
    col, row = modis.grid.width / 2.0, modis.grid.height / 2.0
    corners = [_pixel_to_map(gt, col + dx, row + dy) for dx, dy in ((0, 0), (1, 0), (0, 1))]
    if modis.grid.crs_wkt and reference.grid.crs_wkt and \
            not raster.same_crs(modis.grid.crs_wkt, reference.grid.crs_wkt):
        transform = _transform(modis.grid.crs_wkt, reference.grid.crs_wkt)
        corners = [transform.TransformPoint(x, y)[:2] for x, y in corners]
    (x0, y0), (x1, y1), (x2, y2) = corners
    return float(math.sqrt(math.hypot(x1 - x0, y1 - y0) * math.hypot(x2 - x0, y2 - y0)))


def _footprint_in(grid: raster.Grid, target_gt, target_wkt: str, steps: int = 16):
    """Pixel coordinates (cols, rows) in the target raster of points along the border and
    inside of ``grid`` (a steps x steps lattice); points that fail to transform are dropped."""
    fractions = np.linspace(0.0, 1.0, steps + 1)
    points = [_pixel_to_map(grid.geotransform, fx * grid.width, fy * grid.height)
              for fy in fractions for fx in fractions]
    if grid.crs_wkt and target_wkt and not raster.same_crs(grid.crs_wkt, target_wkt):
        transform = _transform(grid.crs_wkt, target_wkt)
        mapped = []
        for x, y in points:
            try:
                tx, ty = transform.TransformPoint(x, y)[:2]
            except RuntimeError:
                continue
            if np.isfinite(tx) and np.isfinite(ty):
                mapped.append((tx, ty))
        points = mapped
    inverse = gdal.InvGeoTransform(tuple(target_gt))
    cols = np.array([inverse[0] + x * inverse[1] + y * inverse[2] for x, y in points])
    rows = np.array([inverse[3] + x * inverse[4] + y * inverse[5] for x, y in points])
    return cols, rows


def check_overlap(modis: raster.RasterInfo, reference: raster.RasterInfo
                  ) -> Tuple[int, int, int, int]:
    """MODIS pixel window (col0, row0, col1, row1) covering the reference grid; raise when
    the two rasters do not overlap."""
    if not modis.grid.crs_wkt or not reference.grid.crs_wkt:
        which = "modis" if not modis.grid.crs_wkt else "reference"
        raise ResampleError(which, f"raster '{(modis if which == 'modis' else reference).path}'"
                                   " has no coordinate reference system; assign one first")
    cols, rows = _footprint_in(reference.grid, modis.grid.geotransform, modis.grid.crs_wkt)
    window = None
    if len(cols):
        c0 = max(int(math.floor(cols.min())), 0)
        c1 = min(int(math.ceil(cols.max())), modis.grid.width)
        r0 = max(int(math.floor(rows.min())), 0)
        r1 = min(int(math.ceil(rows.max())), modis.grid.height)
        if c1 > c0 and r1 > r0:
            window = (c0, r0, c1, r1)
    if window is None:
        raise ResampleError("overlap", f"the MODIS image '{modis.path}' does not overlap the "
                                     f"reference grid of '{reference.path}'; choose a MODIS "
                                     "tile that covers the Landsat scene")
    return window


# -- GDAL helpers --------------------------------------------------------------------------
def _source_vrt(info: raster.RasterInfo, bands: Sequence[int], shift=(0.0, 0.0)) -> gdal.Dataset:
    """An in-memory VRT of the selected bands (read-only on the file), geotransform shifted
    by ``shift`` = (x, y) coarse pixels (see the module docstring for the convention)."""
    vrt = gdal.Translate("", raster.open_dataset(info.path), format="VRT", bandList=list(bands))
    sx, sy = shift
    if sx or sy:
        gt = info.grid.geotransform
        vrt.SetGeoTransform((gt[0] + sx * gt[1] + sy * gt[2], gt[1], gt[2],
                             gt[3] + sx * gt[4] + sy * gt[5], gt[4], gt[5]))
    return vrt


def _warp_into(target: gdal.Dataset, source: gdal.Dataset, method: str,
               src_nodata: Sequence[Optional[float]]) -> None:
    nodata = [("nan" if v is not None and math.isnan(v) else repr(v)) if v is not None else None
              for v in src_nodata]
    options = dict(resampleAlg=GDAL_METHODS[method], dstNodata=float("nan"),
                   errorThreshold=0.0, warpMemoryLimit=WARP_MEMORY_MB * 1024 * 1024,
                   workingType=gdal.GDT_Float32, multithread=False,
                   warpOptions=["INIT_DEST=NO_DATA"])
    if all(v is not None for v in nodata):
        options["srcNodata"] = " ".join(nodata)
    gdal.Warp(target, source, **options)


def _mem_dataset(width: int, height: int, bands: int, gt, wkt: str) -> gdal.Dataset:
    ds = gdal.GetDriverByName("MEM").Create("", width, height, bands, gdal.GDT_Float32)
    ds.SetGeoTransform(tuple(gt))
    ds.SetProjection(wkt)
    for i in range(bands):
        band = ds.GetRasterBand(i + 1)
        band.SetNoDataValue(float("nan"))
        band.Fill(float("nan"))
    return ds


def _output_encoding(info: raster.RasterInfo, bands: Sequence[int],
                     src_nodata: Sequence[Optional[float]], output_type: Optional[str]
                     ) -> raster.OutputEncoding:
    first = bands[0] - 1
    if output_type == "float32" or info.gdal_type in (gdal.GDT_Float32, gdal.GDT_Float64) \
            or info.gdal_type not in raster._NUMPY_TYPES:
        if output_type == "float32":
            return raster.OutputEncoding(gdal.GDT_Float32, float("nan"), 1.0, 0.0)
        nodata = src_nodata[0] if src_nodata[0] is not None else float("nan")
        return raster.OutputEncoding(gdal.GDT_Float32, nodata, info.scale[first],
                                     info.offset[first])
    limits = np.iinfo(raster._NUMPY_TYPES[info.gdal_type])
    nodata = src_nodata[0]
    if nodata is None or not (limits.min <= nodata <= limits.max) or nodata != int(nodata):
        nodata = raster._integer_nodata(info.gdal_type)
    return raster.OutputEncoding(info.gdal_type, float(nodata), info.scale[first],
                                 info.offset[first])


# -- co-registration -----------------------------------------------------------------------
def _block_sums(integral: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """Sums over size x size blocks with upper-left corners (rows x cols) of the array whose
    integral image (zero first row/column, leading axes kept) is given."""
    r0, c0 = rows[:, None], cols[None, :]
    r1, c1 = r0 + size, c0 + size
    return (integral[..., r1, c1] - integral[..., r0, c1]
            - integral[..., r1, c0] + integral[..., r0, c0])


def _integral(array: np.ndarray) -> np.ndarray:
    out = np.zeros(array.shape[:-2] + (array.shape[-2] + 1, array.shape[-1] + 1), np.float64)
    out[..., 1:, 1:] = array.cumsum(axis=-2).cumsum(axis=-1)
    return out


def _box_filter(array: np.ndarray, width: int) -> np.ndarray:
    """Centred running mean of ``width`` cells along the last two axes (zeros outside)."""
    for axis in (-2, -1):
        pad = [(0, 0)] * array.ndim
        pad[axis] = (width // 2, width - 1 - width // 2)
        padded = np.pad(array, pad, mode="constant")
        cumulative = np.cumsum(padded, axis=axis)
        shape = list(cumulative.shape)
        shape[axis] = 1
        cumulative = np.concatenate([np.zeros(shape), cumulative], axis=axis)
        n = array.shape[axis]
        upper = np.take(cumulative, np.arange(width, width + n), axis=axis)
        lower = np.take(cumulative, np.arange(0, n), axis=axis)
        array = (upper - lower) / width
    return array


def _mean_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over bands of Pearson r between (bands, n) arrays."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    positive = denominator > 0
    r = np.where(positive, (a * b).sum(axis=1) / np.where(positive, denominator, 1.0), 0.0)
    return float(r.mean())


def _parabolic(left: float, centre: float, right: float) -> float:
    curvature = left - 2 * centre + right
    if curvature >= 0 or not np.isfinite(curvature):
        return 0.0
    return float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))


def estimate_shift(modis_path: str, reference_path: str, bands: BandSpec = MOD09_BANDS,
                   nodata: Optional[float] = None, max_shift: float = MAX_SHIFT,
                   reference_bands: Optional[Sequence[int]] = None,
                   subdivisions: Optional[int] = None, psf_passes: int = 1,
                   is_canceled: Callable[[], bool] = never_canceled) -> ShiftEstimate:
    """The sub-pixel shift of the MODIS geotransform that maximises the correlation between
    MODIS and the fine image averaged over the (shifted) MODIS footprints.

    MODIS band ``bands[i]`` is paired with reference band ``reference_bands[i]`` (default:
    reference bands 1, 2, ... in order, as many as both have). Returns the correction in
    coarse pixels (see the module docstring for the sign convention).
    """
    modis = raster.raster_info(modis_path)
    reference = raster.raster_info(reference_path)
    bands = parse_bands(bands, modis.band_count)
    if reference_bands is None:
        reference_bands = tuple(range(1, min(len(bands), reference.band_count) + 1))
    pairs = min(len(bands), len(reference_bands))
    bands, reference_bands = tuple(bands[:pairs]), tuple(reference_bands[:pairs])
    c0, r0, c1, r1 = check_overlap(modis, reference)
    if c1 - c0 > MAX_COREG_WINDOW:
        c0 += (c1 - c0 - MAX_COREG_WINDOW) // 2
        c1 = c0 + MAX_COREG_WINDOW
    if r1 - r0 > MAX_COREG_WINDOW:
        r0 += (r1 - r0 - MAX_COREG_WINDOW) // 2
        r1 = r0 + MAX_COREG_WINDOW
    ratio = min(modis.grid.pixel_size) / max(min(reference.grid.pixel_size), 1e-12)
    k = subdivisions or int(np.clip(round(ratio), 8, 20))
    reach = int(math.ceil(max_shift * k))     # search radius in sub-grid cells
    margin = int(math.ceil(max_shift)) + 1    # coarse pixels of sub-grid around the window
    width, height = c1 - c0, r1 - r0

    # the fine image averaged onto a sub-grid aligned with the MODIS grid
    gt = modis.grid.geotransform
    sub_c0, sub_r0 = c0 - margin, r0 - margin
    origin = _pixel_to_map(gt, sub_c0, sub_r0)
    sub_gt = (origin[0], gt[1] / k, gt[2] / k, origin[1], gt[4] / k, gt[5] / k)
    sub_w, sub_h = (width + 2 * margin) * k, (height + 2 * margin) * k
    fine_vrt = gdal.Translate("", raster.open_dataset(reference_path), format="VRT",
                              bandList=list(reference_bands))
    fine_nodata = [reference.nodata[b - 1] for b in reference_bands]
    subgrid = _mem_dataset(sub_w, sub_h, pairs, sub_gt, modis.grid.crs_wkt)
    options = dict(resampleAlg="average", dstNodata=float("nan"), errorThreshold=0.0,
                   workingType=gdal.GDT_Float32, warpOptions=["INIT_DEST=NO_DATA"])
    if all(v is not None for v in fine_nodata):
        options["srcNodata"] = " ".join(repr(float(v)) for v in fine_nodata)
    gdal.Warp(subgrid, fine_vrt, **options)
    check_canceled(is_canceled)
    fine = subgrid.ReadAsArray().astype(np.float64).reshape(pairs, sub_h, sub_w)
    subgrid = fine_vrt = None
    valid_fine = np.isfinite(fine).all(axis=0)
    for _ in range(psf_passes):
        fine = _box_filter(np.where(valid_fine, fine, 0.0), k)
        valid_fine = _box_filter(valid_fine.astype(np.float64)[None], k)[0] > 1 - 1e-6
    fine_sum = _integral(np.where(valid_fine, fine, 0.0))
    valid_sum = _integral(valid_fine.astype(np.float64))

    coarse = raster.read_window(modis_path, c0, r0, width, height, bands=bands,
                                extra_nodata=[v for v in source_nodata(modis, bands, nodata)
                                              if v is not None])
    # MODIS pixels usable for every candidate shift: valid, and the fine image covers
    # the footprint grown by the search radius (plus one cell for partly covered edges)
    grown = k + 2 * reach + 2
    starts_r = (np.arange(height) + margin) * k - reach - 1
    starts_c = (np.arange(width) + margin) * k - reach - 1
    covered = _block_sums(valid_sum, starts_r, starts_c, grown) >= grown * grown - 0.5
    usable = covered & np.isfinite(coarse).all(axis=0)
    count = int(usable.sum())
    if count < MIN_COREG_PIXELS:
        raise ResampleError("coregister", f"only {count} MODIS pixels lie wholly inside the "
                                          "fine image: too few to co-register; switch "
                                          "co-registration off or use a larger fine image")
    target = coarse[:, usable].astype(np.float64)
    base_r = (np.arange(height) + margin) * k
    base_c = (np.arange(width) + margin) * k

    cache = {}

    def score(i: int, j: int) -> float:
        if (i, j) not in cache:
            sums = _block_sums(fine_sum, base_r + j, base_c + i, k)
            cache[(i, j)] = _mean_correlation(sums[:, usable], target)
        return cache[(i, j)]

    # coarse search on a lattice of stride ``step`` cells, then every cell around the best
    step = max(1, k // 5)
    lattice = list(range(-reach, reach + 1, step))
    if lattice[-1] != reach:
        lattice.append(reach)
    best = max(((i, j) for j in lattice for i in lattice), key=lambda ij: score(*ij))
    check_canceled(is_canceled)
    for _ in range(4):  # climb on the unit lattice until the best is a local maximum
        bi, bj = best
        neighbours = [(i, j) for j in range(max(-reach, bj - step), min(reach, bj + step) + 1)
                      for i in range(max(-reach, bi - step), min(reach, bi + step) + 1)]
        new = max(neighbours, key=lambda ij: score(*ij))
        if new == best:
            break
        best = new
    bi, bj = best
    at_limit = abs(bi) >= reach or abs(bj) >= reach
    fx = 0.0 if abs(bi) >= reach else \
        _parabolic(score(bi - 1, bj), score(bi, bj), score(bi + 1, bj))
    fy = 0.0 if abs(bj) >= reach else \
        _parabolic(score(bi, bj - 1), score(bi, bj), score(bi, bj + 1))
    return ShiftEstimate(shift_x=(bi + fx) / k, shift_y=(bj + fy) / k,
                         correlation=score(bi, bj), correlation_unshifted=score(0, 0),
                         pixels=count, at_limit=at_limit)


# -- the resampling ------------------------------------------------------------------------
def resample_to_grid(modis_path: str, reference_path: str, output_path: str,
                     method: str = "bicubic", bands: BandSpec = MOD09_BANDS,
                     nodata: Optional[float] = None, output_type: Optional[str] = None,
                     coregister: bool = False,
                     progress: Optional[Callable[[float], None]] = None,
                     is_canceled: Optional[Callable[[], bool]] = None,
                     tile_size: int = DEFAULT_TILE, max_shift: float = MAX_SHIFT,
                     shift: Optional[Tuple[float, float]] = None) -> ResampleResult:
    """Warp the MODIS bands ``bands`` onto the grid of ``reference_path``.

    ``method``: one of METHODS. ``bands``: see ``parse_bands``. ``nodata``: the MODIS fill
    value (default: the file's, else -28672). ``output_type``: None/"input" keeps the input
    encoding (e.g. int16 with scale 0.0001), "float32" writes reflectance as Float32 with NaN.
    ``coregister``: estimate and apply a sub-pixel shift (``estimate_shift``); ``shift``
    applies a known correction (x, y coarse pixels) instead.
    """
    started = time.perf_counter()
    progress = progress or no_progress
    is_canceled = is_canceled or never_canceled
    if method not in METHODS:
        raise ResampleError("method", f"unknown method '{method}'; use one of {', '.join(METHODS)}")
    output_type = None if output_type in (None, "", "input") else str(output_type).lower()
    if output_type not in (None, "float32"):
        raise ResampleError("output_type", f"unknown output type '{output_type}'; use 'input' "
                                           "or 'float32'")
    try:
        modis = raster.raster_info(modis_path)
    except raster.RasterError as exc:
        raise ResampleError("modis", str(exc)) from exc
    try:
        reference = raster.raster_info(reference_path)
    except raster.RasterError as exc:
        raise ResampleError("reference", str(exc)) from exc
    bands = parse_bands(bands, modis.band_count)
    src_nodata = source_nodata(modis, bands, nodata)
    check_overlap(modis, reference)
    result = ResampleResult(output_path=output_path, bands=bands, method=method,
                            band_names=band_names_for(bands, modis), nodata=src_nodata)

    estimate_share = 0.0
    if shift is not None:
        result.shift_x, result.shift_y = float(shift[0]), float(shift[1])
    elif coregister:
        estimate_share = 0.2
        estimate = estimate_shift(modis_path, reference_path, bands, nodata, max_shift,
                                  is_canceled=is_canceled)
        result.coregistration = estimate
        result.shift_x, result.shift_y = estimate.shift_x, estimate.shift_y
        result.log.append(
            f"co-registration: shift x {estimate.shift_x:+.3f}, y {estimate.shift_y:+.3f} "
            f"coarse pixels; correlation {estimate.correlation_unshifted:.4f} -> "
            f"{estimate.correlation:.4f} over {estimate.pixels} MODIS pixels")
        if estimate.at_limit:
            result.log.append(f"warning: the best shift lies on the edge of the search "
                              f"window (+-{max_shift} coarse pixels); the true "
                              "misregistration may be larger")
        progress(estimate_share)
    check_canceled(is_canceled)

    source = _source_vrt(modis, bands, (result.shift_x, result.shift_y))
    scale = np.array([modis.scale[b - 1] for b in bands], np.float32)[:, None, None]
    offset = np.array([modis.offset[b - 1] for b in bands], np.float32)[:, None, None]
    encoding = _output_encoding(modis, bands, src_nodata, output_type)
    grid = reference.grid
    total = tile_count(grid.width, grid.height, tile_size)
    result.source_pixel_size = source_pixel_size(modis, reference)
    result.log.append(f"MODIS pixel size {result.source_pixel_size:.6g} (reference grid "
                      f"units) recorded as {scale_ratio.METADATA_KEY}")
    with raster.AtomicGeoTiff(output_path, grid, len(bands), encoding,
                              result.band_names) as out:
        result.acquisition_date = \
            raster.open_dataset(modis_path).GetMetadataItem(ACQUISITION_DATE) or ""
        if result.acquisition_date:  # fuse_series orders images by it
            out.ds.SetMetadataItem(ACQUISITION_DATE, result.acquisition_date)
        # the one scale-ratio rule (core.scale_ratio) reads it back
        out.ds.SetMetadataItem(scale_ratio.METADATA_KEY, f"{result.source_pixel_size:.6g}")
        for done, tile in enumerate(iter_tiles(grid.width, grid.height, tile_size)):
            check_canceled(is_canceled)
            origin = _pixel_to_map(grid.geotransform, tile.x0, tile.y0)
            gt = grid.geotransform
            target = _mem_dataset(tile.width, tile.height, len(bands),
                                  (origin[0], gt[1], gt[2], origin[1], gt[4], gt[5]),
                                  grid.crs_wkt)
            _warp_into(target, source, method, src_nodata)
            values = target.ReadAsArray().reshape(len(bands), tile.height, tile.width)
            target = None
            values = values.astype(np.float32) * scale + offset
            # a pixel is valid when all its bands are (the project's convention)
            values[:, ~np.isfinite(values).all(axis=0)] = np.nan
            out.write(values, tile.x0, tile.y0)
            progress(estimate_share + (1 - estimate_share) * (done + 1) / total)
    source = None
    result.seconds = time.perf_counter() - started
    return result
