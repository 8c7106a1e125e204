"""Landsat Collection 2 Level-2 scenes as delivered, stacked into one surface-reflectance GeoTIFF.

A scene is given as its folder, its ``*_MTL.txt`` / ``*_MTL.xml`` file or its ``.tar`` archive
(read in place through GDAL's ``/vsitar/``: nothing is extracted). Everything goes through
GDAL's virtual file functions, so a folder and an archive take the same code path.

The output holds blue, green, red, NIR, SWIR1, SWIR2 (Landsat 8-9 OLI bands 2-7, Landsat 4-5
TM and 7 ETM+ bands 1-5 and 7) as the product stores them (uint16 digital numbers) with the
product's reflectance scale and offset (C2 L2: 2.75e-5 and -0.2) as GDAL scale/offset, 0 as
nodata (the product's fill; valid numbers start at 1), and ``ACQUISITIONDATE`` in the
metadata. Pixels that ``QA_PIXEL`` flags (fill, and the chosen of dilated cloud, cirrus,
cloud, cloud shadow, snow) or that ``QA_RADSAT`` marks saturated in one of the six bands
become nodata.

Conventions checked against the USGS Collection 2 Level-2 data format control books
(LSDS-1328 for OLI, LSDS-1337 for TM/ETM+): QA_PIXEL bit 0 fill, 1 dilated cloud, 2 cirrus
(OLI only; unused on TM/ETM+), 3 cloud, 4 cloud shadow, 5 snow; QA_RADSAT bit n-1 is the
saturation of band n, and on TM/ETM+ bit 9 marks dropped pixels.
"""
import math
import os
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from osgeo import gdal

from . import raster
from .errors import InputError
from .tiling import check_canceled, iter_tiles, never_canceled, no_progress, tile_count

gdal.UseExceptions()

BAND_NAMES = ("blue", "green", "red", "nir", "swir1", "swir2")
# Landsat band numbers giving BAND_NAMES, by spacecraft
OLI_BANDS = (2, 3, 4, 5, 6, 7)
TM_BANDS = (1, 2, 3, 4, 5, 7)
SPACECRAFT_BANDS = {"LANDSAT_4": TM_BANDS, "LANDSAT_5": TM_BANDS, "LANDSAT_7": TM_BANDS,
                    "LANDSAT_8": OLI_BANDS, "LANDSAT_9": OLI_BANDS}
QA_BITS = {"fill": 0, "dilated_cloud": 1, "cirrus": 2, "cloud": 3, "cloud_shadow": 4,
           "snow": 5}
MASKABLE = ("dilated_cloud", "cirrus", "cloud", "cloud_shadow", "snow")
TM_DROPPED_PIXEL_BIT = 9
SR_SCALE, SR_OFFSET = 2.75e-5, -0.2
SR_FILL = 0
TILE = 512
# a file of a Landsat scene: product id, then a band or QA suffix
SCENE_FILE = re.compile(r"(L[COTE]0\d_\w{4}_\d{6}_\d{8}_\d{8}_\d{2}_\w{2})_\w+\.(TIF|tif)$")
PARAMETER = "INPUT"
EXPECTED = ("a Landsat Collection 2 Level-2 scene (Landsat 4-5 TM, 7 ETM+ or 8-9 OLI) as "
            "delivered by USGS: its folder, its *_MTL.txt / *_MTL.xml file or its .tar "
            "archive, holding *_SR_B*.TIF, *_QA_PIXEL.TIF and *_QA_RADSAT.TIF")


@dataclass(frozen=True)
class LandsatScene:
    """One C2 L2 scene: GDAL paths of its six reflective bands (in BAND_NAMES order) and QA."""
    product_id: str
    spacecraft: str
    date: str                       # YYYY-MM-DD
    band_paths: Tuple[str, ...]
    qa_pixel: str
    qa_radsat: str
    band_numbers: Tuple[int, ...]
    scale: Tuple[float, ...]
    offset: Tuple[float, ...]

    @property
    def is_oli(self) -> bool:
        return self.band_numbers == OLI_BANDS

    @property
    def radsat_mask(self) -> int:
        """QA_RADSAT bits that make a pixel unusable: saturation of one of the six bands
        (and dropped pixels on TM/ETM+)."""
        bits = sum(1 << (n - 1) for n in self.band_numbers)
        return bits if self.is_oli else bits | (1 << TM_DROPPED_PIXEL_BIT)


@dataclass
class PrepareResult:
    output_path: str
    scene: LandsatScene
    window: Tuple[int, int, int, int]            # x0, y0, width, height in the scene
    pixels: int = 0                               # pixels in the window
    fill_pixels: int = 0                          # outside the scene's footprint
    masked_pixels: int = 0                        # inside the footprint, set to nodata
    counts: Dict[str, int] = field(default_factory=dict)   # pixels flagged per cause

    @property
    def masked_percent(self) -> float:
        """Share of the scene's own (non-fill) pixels set to nodata, in percent."""
        inside = self.pixels - self.fill_pixels
        return 100.0 * self.masked_pixels / inside if inside else 0.0


def _bad(message: str) -> InputError:
    return InputError(PARAMETER, message)


# -- finding and reading the metadata ------------------------------------------------------
def _read_text(path: str) -> str:
    handle = gdal.VSIFOpenL(path, "rb")
    if handle is None:
        raise _bad(f"cannot read '{path}'")
    try:
        size = gdal.VSIStatL(path).size
        return gdal.VSIFReadL(1, size, handle).decode("utf-8", errors="replace")
    finally:
        gdal.VSIFCloseL(handle)


def _list(directory: str) -> List[str]:
    return sorted(gdal.ReadDir(directory) or [])


def parse_mtl_text(text: str) -> Dict[str, Dict[str, str]]:
    """Groups of an ODL ``*_MTL.txt``: {group: {key: value}} (first occurrence of a group
    wins: C2 L2 files repeat PRODUCT_CONTENTS-like keys in the Level-1 record)."""
    groups: Dict[str, Dict[str, str]] = {}
    stack: List[str] = []
    for line in text.splitlines():
        if "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        value = value.strip('"')
        if key == "GROUP":
            stack.append(value)
            groups.setdefault(value, {})
        elif key == "END_GROUP":
            stack = stack[:-1]
        elif stack:
            groups[stack[-1]].setdefault(key, value)
    return groups


def parse_mtl_xml(text: str) -> Dict[str, Dict[str, str]]:
    """Groups of a ``*_MTL.xml``, shaped like ``parse_mtl_text``'s (root tag as a group)."""
    root = ElementTree.fromstring(text)
    groups: Dict[str, Dict[str, str]] = {root.tag: {}}
    for group in root:
        values = groups.setdefault(group.tag, {})
        for item in group:
            values.setdefault(item.tag, (item.text or "").strip())
    return groups


def _scene_location(path: str) -> Tuple[str, Optional[str]]:
    """(GDAL directory of the scene's files, the MTL file name or None to search)."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        return path, None
    if not os.path.exists(path):
        raise _bad(f"'{path}' does not exist; give {EXPECTED}")
    if re.search(r"\.(tar|tar\.gz|tgz)$", path, re.IGNORECASE):
        directory = "/vsitar/" + path
        if not _list(directory):
            raise _bad(f"the archive '{path}' cannot be read or is empty; give {EXPECTED}")
        return directory, None
    name = os.path.basename(path)
    if re.search(r"_MTL\.(txt|xml)$", name, re.IGNORECASE):
        return os.path.dirname(path), name
    raise _bad(f"'{name}' is neither a folder, an *_MTL.txt / *_MTL.xml file nor a .tar "
               f"archive; give {EXPECTED}")


def _find_mtl(directory: str, names: Sequence[str]) -> str:
    mtls = [n for n in names if re.search(r"_MTL\.(txt|xml)$", n, re.IGNORECASE)]
    if not mtls:
        espa = [n for n in names if re.search(r"_sr_band\d\.tif$", n, re.IGNORECASE)]
        if espa:
            raise _bad(f"found Collection 1 surface reflectance files ({espa[0]}, ...) "
                       f"in '{directory}'; expected {EXPECTED} (Collection 1 is retired: "
                       "download the scene's Collection 2 Level-2 product)")
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "") or "nothing"
        raise _bad(f"no *_MTL.txt or *_MTL.xml file in '{directory}' (found: {shown}); "
                   f"give {EXPECTED}")
    products = sorted({re.sub(r"_MTL\.(txt|xml)$", "", n, flags=re.IGNORECASE) for n in mtls})
    if len(products) > 1:
        raise _bad(f"'{directory}' holds {len(products)} scenes ({', '.join(products)}); "
                   "give the *_MTL.txt file of the one scene to prepare, or put each scene "
                   "in its own folder")
    txt = [n for n in mtls if n.lower().endswith(".txt")]
    return (txt or mtls)[0]


def _read_mtl(path: str) -> Dict[str, Dict[str, str]]:
    text = _read_text(path)
    try:
        return parse_mtl_xml(text) if path.lower().endswith(".xml") else parse_mtl_text(text)
    except ElementTree.ParseError as exc:
        raise _bad(f"'{path}' is not a readable MTL file ({exc}); give {EXPECTED}")


def _check_product(mtl: Dict[str, Dict[str, str]], mtl_path: str) -> Dict[str, str]:
    """The PRODUCT_CONTENTS group of a C2 L2 MTL, or an error saying what was found."""
    name = os.path.basename(mtl_path)
    if "L1_METADATA_FILE" in mtl:
        info = mtl.get("METADATA_FILE_INFO", {})
        found = info.get("LANDSAT_PRODUCT_ID") or info.get("LANDSAT_SCENE_ID") or name
        raise _bad(f"'{found}' is a Collection 1 Level-1 scene; expected {EXPECTED}")
    contents = mtl.get("PRODUCT_CONTENTS")
    if "LANDSAT_METADATA_FILE" not in mtl or contents is None:
        raise _bad(f"'{name}' is not a Landsat Collection 2 MTL file (no LANDSAT_METADATA_FILE "
                   f"/ PRODUCT_CONTENTS groups); give {EXPECTED}")
    product = contents.get("LANDSAT_PRODUCT_ID", name)
    collection = contents.get("COLLECTION_NUMBER", "")
    level = contents.get("PROCESSING_LEVEL", "")
    if collection.lstrip("0") != "2":
        raise _bad(f"'{product}' is Collection {collection or '?'}; expected {EXPECTED}")
    if not level.startswith("L2"):
        raise _bad(f"'{product}' is a {level or 'non-Level-2'} (Level-1) product without "
                   f"surface reflectance; expected {EXPECTED} (processing level L2SP or L2SR)")
    return contents


def _band_scaling(mtl: Dict[str, Dict[str, str]], band: int) -> Tuple[float, float]:
    parameters = mtl.get("LEVEL2_SURFACE_REFLECTANCE_PARAMETERS", {})
    try:
        return (float(parameters.get(f"REFLECTANCE_MULT_BAND_{band}", SR_SCALE)),
                float(parameters.get(f"REFLECTANCE_ADD_BAND_{band}", SR_OFFSET)))
    except ValueError:
        return SR_SCALE, SR_OFFSET


def open_scene(path: str) -> LandsatScene:
    """The scene at ``path`` (folder, MTL file or .tar), checked: a C2 L2 product of
    Landsat 4-9 with all six reflective bands and both QA files, one scene only."""
    directory, mtl_name = _scene_location(path)
    names = _list(directory)
    mtl_name = mtl_name or _find_mtl(directory, names)
    mtl_path = f"{directory}/{mtl_name}"
    mtl = _read_mtl(mtl_path)
    contents = _check_product(mtl, mtl_path)
    product = contents.get("LANDSAT_PRODUCT_ID", mtl_name)
    attributes = mtl.get("IMAGE_ATTRIBUTES", {})
    spacecraft = attributes.get("SPACECRAFT_ID", "")
    if spacecraft not in SPACECRAFT_BANDS:
        raise _bad(f"'{product}' comes from {spacecraft or 'an unnamed spacecraft'}; expected "
                   "Landsat 4, 5, 7, 8 or 9 (TM, ETM+, OLI)")
    date = attributes.get("DATE_ACQUIRED", "")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
        raise _bad(f"'{mtl_name}' has no DATE_ACQUIRED (YYYY-MM-DD); give an unmodified "
                   "MTL file")
    numbers = SPACECRAFT_BANDS[spacecraft]
    keys = [f"FILE_NAME_BAND_{n}" for n in numbers] + [
        "FILE_NAME_QUALITY_L1_PIXEL", "FILE_NAME_QUALITY_L1_RADIOMETRIC_SATURATION"]
    files = [contents.get(key, "") for key in keys]
    present = set(names)
    missing = [f or key for key, f in zip(keys, files) if not f or f not in present]
    if missing:
        strangers = sorted({m.group(1) for m in map(SCENE_FILE.match, names)
                            if m and m.group(1) != product})
        mixed = f"; the folder holds files of other scenes ({', '.join(strangers)})" \
            if strangers else ""
        raise _bad(f"scene '{product}' in '{directory}' lacks {', '.join(missing)}{mixed}; "
                   "expected all of its *_SR_B*.TIF bands, *_QA_PIXEL.TIF and "
                   "*_QA_RADSAT.TIF beside the MTL file")
    others = [f for f in files if not f.startswith(product)]
    if others:
        raise _bad(f"the MTL file of '{product}' names files of another scene "
                   f"({', '.join(others)}); give an unmodified scene")
    scaling = [_band_scaling(mtl, n) for n in numbers]
    paths = tuple(f"{directory}/{f}" for f in files)
    _check_same_grid(paths, product)
    return LandsatScene(product_id=product, spacecraft=spacecraft, date=date,
                        band_paths=paths[:6], qa_pixel=paths[6], qa_radsat=paths[7],
                        band_numbers=numbers, scale=tuple(s for s, _ in scaling),
                        offset=tuple(o for _, o in scaling))


def _check_same_grid(paths: Sequence[str], product: str) -> None:
    grid = None
    for path in paths:
        try:
            info = raster.raster_info(path)
        except raster.RasterError as exc:
            raise _bad(f"scene '{product}': {exc}")
        if grid is None:
            grid = info.grid
        elif grid.mismatch(info.grid):
            raise _bad(f"scene '{product}': '{os.path.basename(path)}' is not on the grid of "
                       f"'{os.path.basename(paths[0])}' ({grid.mismatch(info.grid)}); the "
                       "files of one scene share one grid: give an unmodified scene")


# -- the stacking ---------------------------------------------------------------------------
def extent_window(grid: raster.Grid, extent: Optional[Tuple[float, float, float, float]]
                  ) -> Tuple[int, int, int, int]:
    """Pixel window (x0, y0, width, height) of the scene covering ``extent`` (xmin, ymin,
    xmax, ymax in the scene's CRS), grown to whole pixels and cut to the scene."""
    if extent is None:
        return 0, 0, grid.width, grid.height
    xmin, ymin, xmax, ymax = extent
    gt = grid.geotransform
    cols = [(x - gt[0]) / gt[1] for x in (xmin, xmax)]
    rows = [(y - gt[3]) / gt[5] for y in (ymin, ymax)]
    x0 = max(int(math.floor(min(cols) + 1e-9)), 0)
    x1 = min(int(math.ceil(max(cols) - 1e-9)), grid.width)
    y0 = max(int(math.floor(min(rows) + 1e-9)), 0)
    y1 = min(int(math.ceil(max(rows) - 1e-9)), grid.height)
    if x1 <= x0 or y1 <= y0:
        raise InputError("EXTENT", "the extent does not overlap the scene; draw an extent "
                                   "inside the scene or leave it empty for the whole scene")
    return x0, y0, x1 - x0, y1 - y0


def qa_flags(qa_pixel: np.ndarray, qa_radsat: np.ndarray, scene: LandsatScene,
             mask: Sequence[str], saturated: bool) -> Dict[str, np.ndarray]:
    """Boolean maps of each masking cause: 'fill', every name in ``mask`` and, with
    ``saturated``, 'saturated'."""
    flags = {name: (qa_pixel >> QA_BITS[name]) & 1 == 1 for name in ("fill", *mask)}
    if saturated:
        flags["saturated"] = (qa_radsat & scene.radsat_mask) != 0
    return flags


def prepare_scene(source: Union[str, LandsatScene], output_path: str,
                  mask: Sequence[str] = MASKABLE, saturated: bool = True,
                  extent: Optional[Tuple[float, float, float, float]] = None,
                  progress: Callable[[float], None] = no_progress,
                  is_canceled: Callable[[], bool] = never_canceled,
                  tile_size: int = TILE) -> PrepareResult:
    """Stack the scene ``source`` (a path for ``open_scene``, or its result) into
    ``output_path`` (see the module docstring).

    ``mask``: QA_PIXEL conditions set to nodata besides fill (names from MASKABLE);
    ``saturated``: also pixels QA_RADSAT marks saturated in one of the six bands;
    ``extent``: (xmin, ymin, xmax, ymax) in the scene's CRS, or None for the whole scene.
    """
    unknown = [m for m in mask if m not in MASKABLE]
    if unknown:
        raise InputError("MASK", f"unknown QA condition(s) {', '.join(unknown)}; choose from "
                                 f"{', '.join(MASKABLE)}")
    scene = source if isinstance(source, LandsatScene) else open_scene(source)
    info = raster.raster_info(scene.band_paths[0])
    x0, y0, width, height = extent_window(info.grid, extent)
    gt = info.grid.geotransform
    grid = raster.Grid(width, height, (gt[0] + x0 * gt[1] + y0 * gt[2], gt[1], gt[2],
                                       gt[3] + x0 * gt[4] + y0 * gt[5], gt[4], gt[5]),
                       info.grid.crs_wkt)
    if len(set(scene.scale)) > 1 or len(set(scene.offset)) > 1:
        raise _bad(f"scene '{scene.product_id}' has different reflectance scales per band "
                   f"({scene.scale}, {scene.offset}); expected one scale and offset")
    encoding = raster.OutputEncoding(info.gdal_type, float(SR_FILL), scene.scale[0],
                                     scene.offset[0])
    result = PrepareResult(output_path, scene, (x0, y0, width, height), pixels=width * height,
                           counts={name: 0 for name in ("fill", *mask)})
    datasets = [raster.open_dataset(p) for p in (*scene.band_paths, scene.qa_pixel,
                                                 scene.qa_radsat)]
    total = tile_count(width, height, tile_size)
    with raster.AtomicGeoTiff(output_path, grid, len(BAND_NAMES), encoding, BAND_NAMES,
                              block_size=tile_size) as out:
        out.ds.SetMetadataItem("ACQUISITIONDATE", scene.date)
        out.ds.SetMetadataItem("LANDSAT_PRODUCT_ID", scene.product_id)
        for done, tile in enumerate(iter_tiles(width, height, tile_size)):
            check_canceled(is_canceled)
            window = (x0 + tile.x0, y0 + tile.y0, tile.width, tile.height)
            stored = np.stack([ds.ReadAsArray(*window) for ds in datasets[:6]])
            flags = qa_flags(datasets[6].ReadAsArray(*window).astype(np.uint16),
                             datasets[7].ReadAsArray(*window).astype(np.uint16), scene, mask,
                             saturated)
            for name, flag in flags.items():
                result.counts[name] = result.counts.get(name, 0) + int(flag.sum())
            fill = flags["fill"] | (stored == SR_FILL).any(axis=0)
            bad = np.logical_or.reduce(list(flags.values())) | fill
            result.fill_pixels += int(fill.sum())
            result.masked_pixels += int((bad & ~fill).sum())
            stored[:, bad] = SR_FILL
            out.ds.WriteArray(stored, tile.x0, tile.y0)
            progress((done + 1) / total)
    return result
