"""The built-in simulated scene: a Landsat-like series and the MODIS images a sensor would see.

Deterministic for a given seed. The fine series (6 bands: blue, green, red, NIR, SWIR1,
SWIR2; 30 m; UTM 33N; int16 reflectance x 10000, nodata -9999) shows crop parcels greening
and senescing at different rates over three dates 16 days apart, sharp edges (parcel
borders, roads, a river), a lake, and an abrupt change: a flood on the last date.

The MODIS images are made the way the sensor sees the ground: a triangular point-spread
blur, aggregation onto a ~463 m grid in the MODIS sinusoidal projection, band-wise
gain/offset, noise, and MOD09's 7-band order (band 1 red, 2 NIR, 3 blue, 4 green, 5 NIR2,
6 SWIR1, 7 SWIR2), int16 x 10000 with fill -28672. For convenience the same images are
also given already resampled onto the fine grid in Landsat band order.
"""
import json
import os
from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np
from osgeo import gdal, osr

from . import raster

gdal.UseExceptions()

BAND_NAMES = ("blue", "green", "red", "nir", "swir1", "swir2")
DATES = ("2021-05-01", "2021-05-17", "2021-06-02")
UTM_EPSG = 32633
ORIGIN = (500010.0, 5100000.0)  # upper-left corner, metres
MODIS_PIXEL = 463.312716528
MODIS_SINUSOIDAL = "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"
MODIS_FILL = -28672
FINE_NODATA = -9999
SCALE = 0.0001
# file band i holds MODIS band i+1; Landsat blue, green, red, NIR, SWIR1, SWIR2 come from
# MODIS bands 3, 4, 1, 2, 6, 7
MODIS_FOR_LANDSAT = (3, 4, 1, 2, 6, 7)

# endmember spectra (reflectance) in Landsat band order
SPECTRA = {
    "soil": (0.08, 0.11, 0.15, 0.22, 0.30, 0.25),
    "vegetation": (0.03, 0.07, 0.04, 0.45, 0.20, 0.09),
    "senescent": (0.07, 0.10, 0.13, 0.28, 0.33, 0.24),
    "water": (0.06, 0.07, 0.05, 0.03, 0.015, 0.01),
    "forest": (0.025, 0.05, 0.03, 0.30, 0.14, 0.06),
    "urban": (0.14, 0.15, 0.17, 0.22, 0.26, 0.23),
}
# crop types: green-vegetation fraction on each date (the rest is soil) and senescence
CROPS = (
    ("winter wheat ripening", (0.80, 0.55, 0.20), 0.6),
    ("maize emerging", (0.05, 0.35, 0.75), 0.0),
    ("soybean emerging", (0.02, 0.20, 0.50), 0.0),
    ("grassland", (0.60, 0.65, 0.70), 0.1),
    ("bare fallow", (0.03, 0.04, 0.05), 0.0),
    ("forest", None, 0.0),
)
# MODIS relative to Landsat: per-band gain and offset (blue, green, red, NIR, SWIR1, SWIR2)
MODIS_GAIN = (0.96, 1.02, 0.98, 1.04, 0.97, 1.01)
MODIS_OFFSET = (0.004, -0.003, 0.002, -0.006, 0.005, 0.001)
MODIS_NOISE = 0.003
FLOOD_SEASON = 1.5       # the flood covers its area from this point of the season on


@dataclass
class SampleScene:
    directory: str
    dates: List[str]
    fine: Dict[str, str] = field(default_factory=dict)
    modis: Dict[str, str] = field(default_factory=dict)
    coarse: Dict[str, str] = field(default_factory=dict)

    @property
    def scale_ratio(self) -> float:
        return MODIS_PIXEL / raster.raster_info(self.fine[self.dates[0]]).grid.pixel_size[0]


def load_sample_scene(directory: str) -> SampleScene:
    """The scene ``make_sample_scene`` wrote into ``directory`` (from its dataset.json)."""
    with open(os.path.join(directory, "dataset.json")) as handle:
        description = json.load(handle)
    paths = {kind: {d: os.path.join(directory, f) for d, f in description[key].items()}
             for kind, key in (("fine", "fine"), ("coarse", "coarse"), ("modis", "modis_raw"))}
    return SampleScene(directory, list(description["fine"]), **paths)


def make_sample_scene(directory: str, size: int = 480, seed: int = 42,
                      pixel_size: float = 30.0) -> SampleScene:
    """Write the scene's GeoTIFFs and a ``dataset.json`` into ``directory``."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    layout = _layout(size, rng)
    grid = _fine_grid(size, pixel_size)
    scene = SampleScene(directory, list(DATES))
    for index, date in enumerate(DATES):
        fine = _fine_image(layout, index, rng)
        scene.fine[date] = _write_fine(os.path.join(directory, f"landsat_{date}.tif"),
                                       fine, grid)
        scene.modis[date] = _write_modis(os.path.join(directory, f"modis_{date}.tif"),
                                         fine, grid, pixel_size, rng)
        scene.coarse[date] = _write_coarse_on_fine_grid(
            os.path.join(directory, f"modis_on_landsat_grid_{date}.tif"),
            scene.modis[date], grid)
        del fine
    _write_dataset_json(scene, size, pixel_size)
    return scene


def _fine_grid(size: int, pixel_size: float) -> raster.Grid:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(UTM_EPSG)
    return raster.Grid(size, size, (ORIGIN[0], pixel_size, 0.0, ORIGIN[1], 0.0, -pixel_size),
                       srs.ExportToWkt())


def _layout(size: int, rng: np.random.Generator) -> dict:
    """Where each land cover is: parcels with crop types, borders, roads, river, lake, flood."""
    rows = np.arange(size, dtype=np.float32)[:, None]
    cols = np.arange(size, dtype=np.float32)[None, :]
    row_edges = _random_edges(size, rng)
    row_strip = np.searchsorted(row_edges, np.arange(size), side="right")
    # each strip of parcels has its own column edges, so borders do not line up
    col_index = np.empty((size, size), dtype=np.int32)
    for top, bottom in zip(np.r_[0, row_edges], np.r_[row_edges, size]):
        edges = _random_edges(size, rng)
        col_index[top:bottom] = np.searchsorted(edges, np.arange(size), side="right")[None, :]
    parcel = row_strip[:, None].astype(np.int32) * 1000 + col_index
    parcel_ids, parcel = np.unique(parcel, return_inverse=True)
    parcel = parcel.reshape(size, size)
    crop_of_parcel = rng.integers(0, len(CROPS), size=len(parcel_ids))
    border = np.zeros((size, size), dtype=bool)
    border[:-1, :] |= parcel[:-1, :] != parcel[1:, :]
    border[:, :-1] |= parcel[:, :-1] != parcel[:, 1:]

    road = np.zeros((size, size), dtype=bool)
    for _ in range(2):
        angle = rng.uniform(0, np.pi)
        offset = rng.uniform(0.3, 0.7) * size
        distance = np.abs((cols - size / 2) * np.sin(angle) - (rows - size / 2) * np.cos(angle)
                          + size / 2 - offset)
        road |= distance < 1.0
    river_centre = size * (0.35 + 0.08 * np.sin(cols / size * 2 * np.pi * 1.5))
    river = np.abs(rows - river_centre) < max(2.0, size / 160)
    lake = (((cols - 0.78 * size) / (0.08 * size)) ** 2
            + ((rows - 0.78 * size) / (0.06 * size)) ** 2) < 1
    flood = (((cols - 0.3 * size) / (0.14 * size)) ** 2
             + ((rows - river_centre - 0.05 * size) / (0.07 * size)) ** 2) < 1
    texture = _smooth_noise(size, rng, cell=12, amplitude=0.06)
    return dict(crop=crop_of_parcel[parcel].astype(np.int8), border=border, road=road,
                river=river, lake=lake, flood=flood & ~lake, texture=texture)


def _random_edges(size: int, rng: np.random.Generator) -> np.ndarray:
    widths = rng.integers(max(4, size // 32), max(8, size // 10), size=size)
    edges = np.cumsum(widths)
    return edges[edges < size]


def _smooth_noise(size: int, rng: np.random.Generator, cell: int, amplitude: float) -> np.ndarray:
    """Low-frequency multiplicative texture around 1 (soil moisture, crop vigour)."""
    coarse = rng.normal(0.0, amplitude, size=(size // cell + 2, size // cell + 2))
    fine = np.kron(coarse, np.ones((cell, cell), dtype=np.float32))[:size, :size]
    return (1.0 + _box_blur(_box_blur(fine, cell), cell)).astype(np.float32)


def _box_blur(image: np.ndarray, width: int) -> np.ndarray:
    """Mean over a width x width window (edges replicated), separable via cumulative sums."""
    pad = width // 2
    for axis in (0, 1):
        padded = np.pad(image, [(pad, width - 1 - pad) if a == axis else (0, 0) for a in (0, 1)],
                        mode="edge")
        cumulative = np.cumsum(padded, axis=axis, dtype=np.float64)
        cumulative = np.insert(cumulative, 0, 0.0, axis=axis)
        n = image.shape[axis]
        upper = np.take(cumulative, np.arange(width, width + n), axis=axis)
        lower = np.take(cumulative, np.arange(0, n), axis=axis)
        image = ((upper - lower) / width).astype(np.float32)
    return image


def _fine_image(layout: dict, season: float, rng: np.random.Generator) -> np.ndarray:
    """The ground at ``season`` (0, 1, 2: the three dates; in between: interpolated crop
    fractions; the flood from 1.5 on)."""
    spectra = {name: np.array(value, dtype=np.float32)[:, None, None]
               for name, value in SPECTRA.items()}
    crop = layout["crop"]
    size = crop.shape[0]
    green = np.zeros((size, size), dtype=np.float32)
    senescent = np.zeros((size, size), dtype=np.float32)
    forest = np.zeros((size, size), dtype=bool)
    for index, (_name, fractions, senescence) in enumerate(CROPS):
        where = crop == index
        if fractions is None:
            forest |= where
            continue
        fraction = float(np.interp(season, range(len(fractions)), fractions))
        green[where] = fraction
        # ripening crops turn yellow rather than bare
        senescent[where] = senescence * (max(fractions) - fraction)
    green = np.clip(green * layout["texture"], 0.0, 1.0)
    soil = np.clip(1.0 - green - senescent, 0.0, 1.0)
    image = (soil * spectra["soil"] * layout["texture"] + green * spectra["vegetation"]
             + senescent * spectra["senescent"])
    image = np.where(forest, spectra["forest"] * layout["texture"], image)
    image = np.where(layout["border"], 0.85 * image + 0.15 * spectra["forest"], image)
    image = np.where(layout["road"], spectra["urban"], image)
    water = layout["river"] | layout["lake"] | (layout["flood"] & (season >= FLOOD_SEASON))
    image = np.where(water, spectra["water"], image)
    image = image + rng.normal(0.0, 0.002, size=image.shape).astype(np.float32)
    return np.clip(image, 0.001, 0.9).astype(np.float32)


def _write_fine(path: str, image: np.ndarray, grid: raster.Grid) -> str:
    encoding = raster.OutputEncoding(gdal.GDT_Int16, FINE_NODATA, SCALE)
    return raster.write_raster(path, image, grid, encoding, BAND_NAMES)


def _write_modis(path: str, fine: np.ndarray, grid: raster.Grid, pixel_size: float,
                 rng: np.random.Generator) -> str:
    """Blur with the sensor's point-spread function and aggregate onto the MODIS grid."""
    footprint = max(1, int(round(MODIS_PIXEL / pixel_size)))
    # the ground goes on beyond the Landsat frame: extend it so MODIS pixels there are whole
    pad = 3 * footprint
    blurred = np.stack([_box_blur(_box_blur(np.pad(band, pad, mode="reflect"), footprint),
                                  footprint) for band in fine])
    source = gdal.GetDriverByName("MEM").Create("", blurred.shape[2], blurred.shape[1],
                                                len(blurred), gdal.GDT_Float32)
    gt = grid.geotransform
    source.SetGeoTransform((gt[0] - pad * gt[1], gt[1], 0.0, gt[3] - pad * gt[5], 0.0, gt[5]))
    source.SetProjection(grid.crs_wkt)
    for i, band in enumerate(blurred):
        source.GetRasterBand(i + 1).WriteArray(band)
    del blurred
    warped = gdal.Warp("", source, format="MEM", dstSRS=MODIS_SINUSOIDAL,
                       outputBounds=_modis_bounds(grid), xRes=MODIS_PIXEL, yRes=MODIS_PIXEL,
                       resampleAlg="average", dstNodata=np.nan)
    landsat_order = warped.ReadAsArray().astype(np.float32)
    gain = np.array(MODIS_GAIN, dtype=np.float32)[:, None, None]
    offset = np.array(MODIS_OFFSET, dtype=np.float32)[:, None, None]
    landsat_order = landsat_order * gain + offset \
        + rng.normal(0.0, MODIS_NOISE, size=landsat_order.shape).astype(np.float32)
    modis = np.empty((7,) + landsat_order.shape[1:], dtype=np.float32)
    for landsat_band, modis_band in enumerate(MODIS_FOR_LANDSAT):
        modis[modis_band - 1] = landsat_order[landsat_band]
    modis[4] = 0.95 * landsat_order[3]  # MODIS band 5 (1240 nm), unused by Landsat
    modis_grid = raster.Grid(warped.RasterXSize, warped.RasterYSize,
                             tuple(warped.GetGeoTransform()), warped.GetProjection())
    encoding = raster.OutputEncoding(gdal.GDT_Int16, MODIS_FILL, SCALE)
    names = [f"sur_refl_b0{i}" for i in range(1, 8)]
    return raster.write_raster(path, modis, modis_grid, encoding, names)


def _modis_bounds(grid: raster.Grid, margin: int = 1) -> tuple:
    """MODIS-aligned sinusoidal bounds covering the fine grid with a margin of whole pixels."""
    source, target = osr.SpatialReference(), osr.SpatialReference()
    source.ImportFromWkt(grid.crs_wkt)
    target.ImportFromProj4(MODIS_SINUSOIDAL)
    source.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    target.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    transform = osr.CoordinateTransformation(source, target)
    gt = grid.geotransform
    corners = [transform.TransformPoint(gt[0] + i * grid.width * gt[1],
                                        gt[3] + j * grid.height * gt[5])[:2]
               for i in (0, 1) for j in (0, 1)]
    xs, ys = zip(*corners)
    def snap(value, rounding, outward):
        return (rounding(value / MODIS_PIXEL) + outward * margin) * MODIS_PIXEL
    return (snap(min(xs), np.floor, -1), snap(min(ys), np.floor, -1),
            snap(max(xs), np.ceil, 1), snap(max(ys), np.ceil, 1))


def _write_coarse_on_fine_grid(path: str, modis_path: str, grid: raster.Grid) -> str:
    bands = [raster.read_raster(modis_path, bands=[b])[0] for b in MODIS_FOR_LANDSAT]
    info = raster.raster_info(modis_path)
    source = gdal.GetDriverByName("MEM").Create("", info.grid.width, info.grid.height,
                                                len(bands), gdal.GDT_Float32)
    source.SetGeoTransform(info.grid.geotransform)
    source.SetProjection(info.grid.crs_wkt)
    for i, band in enumerate(bands):
        source.GetRasterBand(i + 1).WriteArray(band)
        source.GetRasterBand(i + 1).SetNoDataValue(np.nan)
    x0, y0 = grid.geotransform[0], grid.geotransform[3]
    x1 = x0 + grid.width * grid.geotransform[1]
    y1 = y0 + grid.height * grid.geotransform[5]
    warped = gdal.Warp("", source, format="MEM", dstSRS=grid.crs_wkt,
                       outputBounds=(x0, y1, x1, y0), width=grid.width, height=grid.height,
                       resampleAlg="bilinear", dstNodata=np.nan)
    encoding = raster.OutputEncoding(gdal.GDT_Int16, FINE_NODATA, SCALE)
    return raster.write_raster(path, warped.ReadAsArray().astype(np.float32), grid, encoding,
                               BAND_NAMES)


def _write_dataset_json(scene: SampleScene, size: int, pixel_size: float) -> None:
    d0, d1, d2 = scene.dates
    description = {
        "name": "stfusion-sample",
        "site": "simulated crop parcels, roads, river, lake and a flood on the last date",
        "pixel_size_m": pixel_size,
        "size": [size, size],
        "bands": list(BAND_NAMES),
        "scale": SCALE,
        "nodata": FINE_NODATA,
        "coarse_is_real": False,
        "fine": {d: os.path.basename(p) for d, p in scene.fine.items()},
        "coarse": {d: os.path.basename(p) for d, p in scene.coarse.items()},
        "modis_raw": {d: os.path.basename(p) for d, p in scene.modis.items()},
        "cases": [{"t1": [d0], "t2": d1}, {"t1": [d1], "t2": d2}, {"t1": [d0, d2], "t2": d1}],
    }
    with open(os.path.join(scene.directory, "dataset.json"), "w") as handle:
        json.dump(description, handle, indent=2)


# -- a time series: many coarse dates, a few (partly clouded) fine dates -------------------
SERIES_START = "2021-05-01"
CLOUD, SHADOW = 4, 2          # cloud-mask codes (as Landsat's cfmask; 0 = clear)


@dataclass
class SampleSeries:
    """Coarse images on the fine grid for every date, fine images (with clouds drawn in and
    a cloud mask each) for a few, and the true fine image of every date (``truth``)."""
    directory: str
    fine: Dict[str, str] = field(default_factory=dict)
    masks: Dict[str, str] = field(default_factory=dict)
    coarse: Dict[str, str] = field(default_factory=dict)
    truth: Dict[str, str] = field(default_factory=dict)


def make_sample_series(directory: str, size: int = 96, coarse_dates: int = 30,
                       step_days: int = 2, fine_every: int = 6, seed: int = 7,
                       pixel_size: float = 30.0,
                       clouds: Dict[int, tuple] = None) -> SampleSeries:
    """A season of the sample scene: ``coarse_dates`` coarse images ``step_days`` apart, a
    fine image every ``fine_every``-th date (and the last). ``clouds`` maps a fine image's
    number to cloud ellipses (centre row, centre col, radius; fractions of the size); by
    default the 2nd, 4th and 5th fine images are partly clouded. Coarse images are the true
    image seen through the MODIS point-spread function (no reprojection: quick)."""
    os.makedirs(os.path.join(directory, "truth"), exist_ok=True)
    clouds = {1: ((0.3, 0.3, 0.22),), 3: ((0.6, 0.7, 0.25), (0.2, 0.8, 0.1)),
              4: ((0.5, 0.5, 0.3),)} if clouds is None else clouds
    rng = np.random.default_rng(seed)
    layout = _layout(size, rng)
    grid = _fine_grid(size, pixel_size)
    start = np.datetime64(SERIES_START)
    fine_indices = sorted(set(range(0, coarse_dates, fine_every)) | {coarse_dates - 1})
    series = SampleSeries(directory)
    footprint = max(1, int(round(MODIS_PIXEL / pixel_size)))
    for index in range(coarse_dates):
        date = str(start + np.timedelta64(index * step_days, "D"))
        truth = _fine_image(layout, 2.0 * index / max(1, coarse_dates - 1), rng)
        series.truth[date] = _write_fine(os.path.join(directory, "truth",
                                                      f"landsat_{date}.tif"), truth, grid)
        series.coarse[date] = _write_fine(
            os.path.join(directory, f"modis_on_landsat_grid_{date}.tif"),
            _coarse_view(truth, footprint, rng), grid)
        if index in fine_indices:
            number = fine_indices.index(index)
            mask = _cloud_mask(size, clouds.get(number, ()))
            series.masks[date] = raster.write_raster(
                os.path.join(directory, f"cloudmask_{date}.tif"), mask[None].astype(np.float32),
                grid, raster.OutputEncoding(gdal.GDT_Byte, 255), ("cloud mask",))
            seen = np.where(mask == CLOUD, np.float32(0.45), truth)
            seen = np.where(mask == SHADOW, 0.5 * truth, seen)
            series.fine[date] = _write_fine(os.path.join(directory, f"landsat_{date}.tif"),
                                            seen, grid)
    return series


def _coarse_view(truth: np.ndarray, footprint: int, rng: np.random.Generator) -> np.ndarray:
    pad = footprint
    blurred = np.stack([_box_blur(_box_blur(np.pad(band, pad, mode="reflect"), footprint),
                                  footprint)[pad:-pad, pad:-pad] for band in truth])
    gain = np.array(MODIS_GAIN, dtype=np.float32)[:, None, None]
    offset = np.array(MODIS_OFFSET, dtype=np.float32)[:, None, None]
    noise = rng.normal(0.0, MODIS_NOISE / footprint, size=blurred.shape).astype(np.float32)
    return blurred * gain + offset + noise


def _cloud_mask(size: int, ellipses) -> np.ndarray:
    """cfmask-like codes: clouds (round) and their shadows (the same shapes, shifted)."""
    rows = np.arange(size, dtype=np.float32)[:, None] / size
    cols = np.arange(size, dtype=np.float32)[None, :] / size
    mask = np.zeros((size, size), np.uint8)
    for row, col, radius in ellipses:
        shadow = (rows - row - 0.08) ** 2 + (cols - col - 0.08) ** 2 < radius ** 2
        mask[shadow] = SHADOW
    for row, col, radius in ellipses:
        mask[(rows - row) ** 2 + (cols - col) ** 2 < radius ** 2] = CLOUD
    return mask
