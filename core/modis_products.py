"""MODIS (HDF-EOS, HDF4) and VIIRS (HDF-EOS5) land products as downloaded: recognise the
product, stack the bands the fine image has, apply the product's scale, fill values and QA,
mosaic adjacent tiles of one date.

``prepare_source`` turns one or several HDF files (tiles h/v of one product and date) into an
in-memory GeoTIFF (``/vsimem/``) on the products' own sinusoidal grid, cut to the part that
covers the fine image (plus a margin for the resampling kernels): one band per band of the
fine image, named like it, with the product's scale/offset as GDAL scale/offset, and bad
pixels (fill, and unless kept the product's QA flags) set to one nodata value. That file
then goes through ``core.resample.resample_to_grid`` like any other MODIS image.

Scales come from this table, not from the files' ``scale_factor`` attributes, because the
MODIS products disagree on its meaning (MOD09 stores 0.0001 = multiply, MOD13 stores 10000 =
divide). QA rules (from the products' user guides and the files' own QA descriptions):

- MOD09GA/MYD09GA ``state_1km_1`` and MOD09A1 ``sur_refl_state_500m``: cloud state bits 0-1
  cloudy (01) or mixed (10), cloud shadow bit 2, cirrus bits 8-9 average (10) or high (11);
  ``QC_500m_1`` / ``sur_refl_qc_500m``: MODLAND QA bits 0-1 = 10 or 11 (not produced).
- MCD43A4 ``BRDF_Albedo_Band_Mandatory_Quality_BandN``: anything but 0 (full BRDF inversion).
- MOD13Q1/MOD13A1 ``pixel reliability``: anything but 0 (good) and 1 (marginal).
- MOD11A1 ``QC_Day``: mandatory QA bits 0-1 = 10 or 11 (not produced).
- VNP09GA/VJ109GA ``SurfReflect_QF1_1``: cloud mask confidence bits 2-3 probably (10) or
  confidently (11) cloudy; ``SurfReflect_QF2_1``: cloud shadow bit 3.
- VNP43IA4/VJ143IA4 ``BRDF_Albedo_Band_Mandatory_Quality_In``: anything but 0.

GDAL before 3.8 reads HDF-EOS5 (VIIRS) fields without georeferencing; their grid geometry is
then taken from the file's ``StructMetadata.0`` (see ``_georeferenced``). VNP09GA has red, NIR
and SWIR1 at 500 m (I1-I3) and blue, green, SWIR2 at 1 km (M3, M4, M11): the 1 km bands and
all QA are read onto the finest grid of the bands used by nearest neighbour.
"""
import datetime
import os
import re
import uuid
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from osgeo import gdal

from . import raster
from .errors import InputError
from .resample import ResampleError, ResampleResult, check_overlap, resample_to_grid

gdal.UseExceptions()

PARAMETER = "PRODUCTS"
CONTAINER_SUFFIXES = (".hdf", ".hdf4", ".h4", ".h5", ".he5", ".nc")
MARGIN = 4  # MODIS pixels kept around the fine image's footprint for the resampling kernels
# MODIS and VIIRS land tiles: PRODUCT.AYYYYDDD.hHHvVV.COLLECTION.PRODUCTION.hdf/.h5
FILE_NAME = re.compile(r"^(M[OY]D\w+|MCD\w+|VNP\w+|VJ[12]\w+)\.A(\d{4})(\d{3})\.h(\d\d)v(\d\d)\.",
                       re.IGNORECASE)
# an HDF-EOS5 grid field as GDAL's HDF5 driver names it: ...//HDFEOS/GRIDS/<grid>/Data_Fields/<f>
EOS5_GRID_FIELD = re.compile(r"//HDFEOS/GRIDS/([^/]+)/Data_Fields/")


@dataclass(frozen=True)
class Qa:
    """A QA field and the rule telling its bad pixels (``bad(values) -> bool array``)."""
    field: str
    bad: Callable[[np.ndarray], np.ndarray]
    meaning: str


@dataclass(frozen=True)
class Band:
    field: str
    fill: int
    qa: Optional[Qa] = None      # a QA field of this band only (MCD43)


@dataclass(frozen=True)
class Product:
    name: str
    bands: Dict[str, Band]       # fine-image band name -> product field
    default_bands: Tuple[str, ...]
    scale: float
    offset: float = 0.0
    nodata: int = -28672         # written for every bad pixel
    qa: Tuple[Qa, ...] = ()


def _bits(value: np.ndarray, first: int, count: int) -> np.ndarray:
    return (value.astype(np.int64) >> first) & ((1 << count) - 1)


def _mod09_state_bad(state: np.ndarray) -> np.ndarray:
    cloud = np.isin(_bits(state, 0, 2), (1, 2))
    return cloud | (_bits(state, 2, 1) == 1) | (_bits(state, 8, 2) >= 2)


def _not_produced(qc: np.ndarray) -> np.ndarray:
    return _bits(qc, 0, 2) >= 2


MOD09_ORDER = {"blue": 3, "green": 4, "red": 1, "nir": 2, "swir1": 6, "swir2": 7}
REFLECTANCE = tuple(MOD09_ORDER)
STATE = "cloudy or mixed (bits 0-1), cloud shadow (bit 2), average or high cirrus (bits 8-9)"
NOT_PRODUCED = "MODLAND QA bits 0-1 'not produced' (10, 11)"


def _mcd43_band(number: int) -> Band:
    return Band(f"Nadir_Reflectance_Band{number}", 32767,
                Qa(f"BRDF_Albedo_Band_Mandatory_Quality_Band{number}", lambda q: q != 0,
                   "not a full BRDF inversion (mandatory quality > 0)"))


def _mod13(prefix: str, name: str) -> Product:
    reliability = Qa(f"{prefix} 16 days pixel reliability", lambda r: (r < 0) | (r > 1),
                     "pixel reliability other than good (0) or marginal (1)")
    fields = {"ndvi": ("NDVI", -3000), "evi": ("EVI", -3000), "blue": ("blue reflectance", -1000),
              "red": ("red reflectance", -1000), "nir": ("NIR reflectance", -1000),
              "swir2": ("MIR reflectance", -1000)}
    return Product(name, {key: Band(f"{prefix} 16 days {field}", fill)
                          for key, (field, fill) in fields.items()},
                   ("ndvi",), 1e-4, nodata=-28672, qa=(reliability,))


def _viirs_cloudy(qf1: np.ndarray) -> np.ndarray:
    return _bits(qf1, 2, 2) >= 2


def _viirs_shadow(qf2: np.ndarray) -> np.ndarray:
    return _bits(qf2, 3, 1) == 1


VNP09_FIELDS = {"blue": "M3", "green": "M4", "red": "I1", "nir": "I2", "swir1": "I3",
                "swir2": "M11"}
VIIRS_I_BANDS = {"red": 1, "nir": 2, "swir1": 3}


def _vnp43_band(number: int) -> Band:
    return Band(f"Nadir_Reflectance_I{number}", 32767,
                Qa(f"BRDF_Albedo_Band_Mandatory_Quality_I{number}", lambda q: q != 0,
                   "not a full BRDF inversion (mandatory quality > 0)"))


PRODUCTS: Dict[str, Product] = {p.name: p for p in (
    Product("MOD09GA", {k: Band(f"sur_refl_b{n:02d}_1", -28672) for k, n in MOD09_ORDER.items()},
            REFLECTANCE, 1e-4,
            qa=(Qa("state_1km_1", _mod09_state_bad, STATE),
                Qa("QC_500m_1", _not_produced, NOT_PRODUCED))),
    Product("MOD09A1", {k: Band(f"sur_refl_b{n:02d}", -28672) for k, n in MOD09_ORDER.items()},
            REFLECTANCE, 1e-4,
            qa=(Qa("sur_refl_state_500m", _mod09_state_bad, STATE),
                Qa("sur_refl_qc_500m", _not_produced, NOT_PRODUCED))),
    Product("MCD43A4", {k: _mcd43_band(n) for k, n in MOD09_ORDER.items()}, REFLECTANCE, 1e-4,
            nodata=32767),
    _mod13("250m", "MOD13Q1"),
    _mod13("500m", "MOD13A1"),
    Product("MOD11A1", {"lst": Band("LST_Day_1km", 0), "lst_day": Band("LST_Day_1km", 0),
                        "lst_night": Band("LST_Night_1km", 0)},
            ("lst",), 0.02, nodata=0, qa=(Qa("QC_Day", _not_produced, NOT_PRODUCED),)),
    Product("VNP09GA", {k: Band(f"SurfReflect_{f}_1", -28672) for k, f in VNP09_FIELDS.items()},
            REFLECTANCE, 1e-4,
            qa=(Qa("SurfReflect_QF1_1", _viirs_cloudy,
                   "cloud mask confidence bits 2-3 probably or confidently cloudy (10, 11)"),
                Qa("SurfReflect_QF2_1", _viirs_shadow, "cloud shadow (bit 3)"))),
    Product("VNP43IA4", {k: _vnp43_band(n) for k, n in VIIRS_I_BANDS.items()},
            tuple(VIIRS_I_BANDS), 1e-4, nodata=32767),
)}
# Aqua's MYD and NOAA-20/21's VJ1/VJ2 files share the table entry of Terra's MOD / S-NPP's VNP
SAME_PRODUCT = (("MYD", "MOD"), ("VJ1", "VNP"), ("VJ2", "VNP"))
SUPPORTED = ", ".join(sorted(PRODUCTS) + ["MYD09GA", "MYD09A1", "MYD13Q1", "MYD13A1",
                                          "MYD11A1", "VJ109GA", "VJ143IA4"])


@dataclass
class ProductFiles:
    """Tiles of one product and date: field name -> the GDAL name of it in each file."""
    product: Product
    date: str                                   # YYYY-MM-DD
    paths: Tuple[str, ...]
    fields: List[Dict[str, str]]                # per file: field name -> GDAL dataset name

    def mosaic(self, field_name: str) -> str:
        """A /vsimem/ VRT of ``field_name`` over all tiles (caller deletes it)."""
        path = f"/vsimem/stfusion_{uuid.uuid4().hex}.vrt"
        gdal.BuildVRT(path, [names[field_name] for names in self.fields])
        return path


@dataclass
class PreparedSource:
    path: str                                   # /vsimem/ GeoTIFF; ``release`` deletes it
    product: str
    date: str
    band_names: Tuple[str, ...]
    tiles: int
    pixels: int = 0                             # product pixels over the fine image
    fill_pixels: int = 0
    qa_pixels: int = 0                          # valid pixels set to nodata by the QA
    qa_rules: Tuple[str, ...] = ()

    @property
    def qa_percent(self) -> float:
        valid = self.pixels - self.fill_pixels
        return 100.0 * self.qa_pixels / valid if valid else 0.0

    def release(self) -> None:
        gdal.Unlink(self.path)


def is_product_file(value) -> bool:
    """Whether ``value`` is the path of a product container (HDF), not a plain raster."""
    return isinstance(value, str) and value.lower().endswith(CONTAINER_SUFFIXES) \
        and os.path.isfile(value)


def _field_name(gdal_name: str) -> str:
    """The field of a subdataset name: 'HDF4_EOS:EOS_GRID:"f.hdf":grid:field' -> 'field'
    (GDAL quotes names with spaces: ...:grid:"250m 16 days NDVI")."""
    return re.split(r"[:/]", gdal_name)[-1].strip('"')


def _subdatasets(ds: gdal.Dataset) -> Dict[str, str]:
    return {_field_name(name): name for name, _description in ds.GetSubDatasets()}


def _date(path: str, metadata: Dict[str, str]) -> str:
    match = FILE_NAME.match(os.path.basename(path))
    if match:
        day = datetime.date(int(match.group(2)), 1, 1) + \
            datetime.timedelta(days=int(match.group(3)) - 1)
        return day.isoformat()
    begins = _metadata_item(metadata, "RANGEBEGINNINGDATE")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", begins):
        return begins
    raise InputError(PARAMETER, f"'{os.path.basename(path)}' tells no date (no AYYYYDDD in the "
                                "file name, no RANGEBEGINNINGDATE); keep the name the archive "
                                "gave it")


def _metadata_item(metadata: Dict[str, str], key: str) -> str:
    """``key`` of a product's metadata: HDF4 (ECS) names it in capitals, HDF5 (VIIRS) as a
    file attribute in any case, possibly prefixed by its group (``..._ShortName``)."""
    names = {name.upper(): value for name, value in metadata.items()}
    if key in names:
        return names[key]
    return next((value for name, value in names.items() if name.endswith("_" + key)), "")


def _short_name(path: str, ds: gdal.Dataset) -> str:
    match = FILE_NAME.match(os.path.basename(path))
    metadata = ds.GetMetadata() or {}
    return (_metadata_item(metadata, "SHORTNAME") or (match.group(1) if match else "")).upper()


def _product_of(path: str, short: str, fields: Dict[str, str]) -> Product:
    """The product table entry of ``short`` (see SAME_PRODUCT)."""
    for other, same in SAME_PRODUCT:
        if short.startswith(other):
            short = same + short[len(other):]
    product = PRODUCTS.get(short)
    if product is None:
        listing = "; ".join(sorted(fields)) or "none"
        found = f"product '{short}'" if short else "no MODIS product name (SHORTNAME)"
        raise InputError(PARAMETER, f"'{os.path.basename(path)}' holds {found} with the "
                                    f"subdatasets: {listing}. Supported products: {SUPPORTED}; "
                                    "for another file give one of its subdatasets, converted "
                                    "to GeoTIFF, as INPUT")
    return product


@dataclass(frozen=True)
class Eos5Grid:
    """Where one grid of an HDF-EOS5 file's ``StructMetadata.0`` lies."""
    upper_left: Tuple[float, float]
    lower_right: Tuple[float, float]
    sphere_radius: float

    def vrt_of(self, gdal_name: str) -> str:
        """``gdal_name`` with this grid's georeferencing, as VRT XML (GDAL opens the text)."""
        srs = f"+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R={self.sphere_radius} +units=m +no_defs"
        bounds = [*self.upper_left, *self.lower_right]
        vrt = gdal.Translate("", gdal_name, format="VRT", outputSRS=srs, outputBounds=bounds)
        return vrt.GetMetadata("xml:VRT")[0]


def _struct_metadata(path: str) -> str:
    ds = gdal.OpenEx(path, gdal.OF_MULTIDIM_RASTER)
    try:
        group = ds.GetRootGroup().OpenGroup("HDFEOS INFORMATION")
        return group.OpenMDArray("StructMetadata.0").Read()[0]
    except (AttributeError, RuntimeError, IndexError):
        raise InputError(PARAMETER, f"'{os.path.basename(path)}' has no HDF-EOS5 "
                                    "StructMetadata.0 telling where its grids lie; give the "
                                    "file as downloaded")


def _odl_value(block: str, key: str) -> str:
    """The value of ``key=...`` in an ODL block, unquoted ('' when absent)."""
    found = re.search(rf"^\s*{key}=(.*)$", block, re.MULTILINE)
    return found.group(1).strip().strip('"') if found else ""


def _odl_numbers(block: str, key: str) -> Tuple[float, ...]:
    """The numbers of ``key=(a,b,...)`` in an ODL block."""
    return tuple(float(number) for number in _odl_value(block, key).strip("()").split(","))


def _eos5_grids(path: str) -> Dict[str, Eos5Grid]:
    """The sinusoidal grids of HDF-EOS5 ``path`` by name, from its StructMetadata.0."""
    blocks = re.findall(r"GROUP=GRID_\d+(.*?)END_GROUP=GRID_\d+", _struct_metadata(path),
                        re.DOTALL)
    return {_odl_value(block, "GridName"): Eos5Grid(_odl_numbers(block, "UpperLeftPointMtrs"),
                                                    _odl_numbers(block, "LowerRightMtrs"),
                                                    _odl_numbers(block, "ProjParams")[0])
            for block in blocks if _odl_value(block, "Projection") == "HE5_GCTP_SNSOID"}


def _georeferenced(path: str, fields: Dict[str, str]) -> Dict[str, str]:
    """``fields``, with each HDF-EOS5 grid field that GDAL opens without georeferencing
    replaced by a VRT placing it on its grid (GDAL 3.8+ georeferences them itself)."""
    eos5 = {field: name for field, name in fields.items() if EOS5_GRID_FIELD.search(name)}
    if not eos5 or gdal.Open(next(iter(eos5.values()))).GetProjection():
        return fields
    # the VRT text goes into /vsimem/ mosaics: its file name must not be relative
    absolute = os.path.abspath(path) if os.path.isfile(path) else path
    grids = _eos5_grids(absolute)
    placed = dict(fields)
    for field, name in eos5.items():
        grid = grids.get(EOS5_GRID_FIELD.search(name).group(1))
        if grid is not None:
            placed[field] = grid.vrt_of(name.replace(path, absolute, 1))
    return placed


def open_products(paths: Sequence[str]) -> ProductFiles:
    """The product files ``paths`` (one product, one date, one or several tiles), checked."""
    if not paths:
        raise InputError(PARAMETER, "no product file given")
    found = []
    for path in map(str, paths):
        try:
            ds = gdal.Open(path)
        except RuntimeError as exc:
            raise InputError(PARAMETER, f"GDAL cannot open '{path}' ({exc}); give MODIS HDF "
                                        "files as downloaded (e.g. MOD09GA.A2021195.h18v04."
                                        "061.*.hdf)")
        fields = _georeferenced(path, _subdatasets(ds))
        short = _short_name(path, ds)
        found.append((path, short, _product_of(path, short, fields),
                      _date(path, ds.GetMetadata() or {}), fields))
    kinds = sorted({(short, date) for _path, short, _p, date, _f in found})
    if len(kinds) > 1:
        listed = ", ".join(f"{short} of {date}" for short, date in kinds)
        raise InputError(PARAMETER, f"the files hold {listed}; give tiles of one product and "
                                    "one date (run once per date)")
    return ProductFiles(found[0][2], found[0][3], tuple(f[0] for f in found),
                        [f[4] for f in found])


def choose_bands(product: Product, reference_names: Sequence[str]) -> Tuple[str, ...]:
    """The product bands matching the fine image's band names, in its order; the product's
    default bands when the fine image's bands are not named."""
    names = tuple(name.strip().lower() for name in reference_names)
    known = [n for n in names if n in product.bands]
    if known and len(known) == len(names):
        return names
    if not known and len(product.default_bands) == len(names):
        return product.default_bands
    missing = [n for n in names if n not in product.bands]
    raise InputError("REFERENCE", f"the fine image's bands ({', '.join(names)}) do not match "
                                  f"{product.name}: {', '.join(missing)} not in the product, "
                                  f"which has {', '.join(product.bands)}; give a fine image "
                                  "whose band descriptions are among these (e.g. from "
                                  "stfusion:prepare_landsat)")


def _window(info: raster.RasterInfo, reference: raster.RasterInfo) -> Tuple[int, int, int, int]:
    try:
        c0, r0, c1, r1 = check_overlap(info, reference)
    except ResampleError as exc:
        raise InputError(PARAMETER, str(exc))
    c0, r0 = max(c0 - MARGIN, 0), max(r0 - MARGIN, 0)
    c1, r1 = min(c1 + MARGIN, info.grid.width), min(r1 + MARGIN, info.grid.height)
    return c0, r0, c1 - c0, r1 - r0


def _read_on(grid_ds: gdal.Dataset, source: str) -> np.ndarray:
    """``source`` (any resolution) read onto the grid of ``grid_ds`` by nearest neighbour,
    values as stored (fill values included): QA at 1 km onto 500 m bands."""
    target = gdal.GetDriverByName("MEM").Create("", grid_ds.RasterXSize, grid_ds.RasterYSize,
                                               1, gdal.Open(source).GetRasterBand(1).DataType)
    target.SetGeoTransform(grid_ds.GetGeoTransform())
    target.SetProjection(grid_ds.GetProjection())
    gdal.Warp(target, source, resampleAlg="near", srcNodata="None")
    return target.ReadAsArray()


def _read_window(window_ds: gdal.Dataset, source: str, x0: int, y0: int) -> np.ndarray:
    """``source`` over ``window_ds``, the window at (x0, y0) of the finest grid: read as is
    where ``source`` is on that grid, else by nearest neighbour (1 km bands onto 500 m)."""
    ds = gdal.Open(source)
    if ds.GetGeoTransform()[1] != window_ds.GetGeoTransform()[1]:
        return _read_on(window_ds, source)
    return ds.ReadAsArray(x0, y0, window_ds.RasterXSize, window_ds.RasterYSize)


def _finest(mosaics: Sequence[str]) -> str:
    """The mosaic of ``mosaics`` with the smallest pixels (the first of equals)."""
    return min(mosaics, key=lambda path: abs(gdal.Open(path).GetGeoTransform()[1]))


def prepare_source(files: ProductFiles, reference_path: str, keep_qa: bool = False
                   ) -> PreparedSource:
    """The bands of the fine image ``reference_path`` from ``files`` (see the module
    docstring); the caller calls ``release()`` on the result when done."""
    product = files.product
    reference = raster.raster_info(reference_path)
    names = choose_bands(product, reference.band_names)
    needed = [product.bands[n].field for n in names] + [q.field for q in product.qa] + \
        [product.bands[n].qa.field for n in names if product.bands[n].qa]
    for path, fields in zip(files.paths, files.fields):
        missing = [f for f in dict.fromkeys(needed) if f not in fields]
        if missing:
            raise InputError(PARAMETER, f"'{os.path.basename(path)}' ({product.name}) lacks "
                                        f"the subdataset(s) {', '.join(missing)}; it holds "
                                        f"{'; '.join(sorted(fields))}")
    mosaics = {f: files.mosaic(f) for f in dict.fromkeys(needed)}
    try:
        finest = _finest([mosaics[product.bands[n].field] for n in names])
        x0, y0, width, height = _window(raster.raster_info(finest), reference)
        window_ds = gdal.Translate("", finest, format="MEM", srcWin=[x0, y0, width, height])
        stored = np.stack([_read_window(window_ds, mosaics[product.bands[n].field], x0, y0)
                           for n in names])
        fill = np.zeros((height, width), bool)
        for band, values in zip(names, stored):
            fill |= values == product.bands[band].fill
        rules = list(product.qa) + [product.bands[n].qa for n in names if product.bands[n].qa]
        flagged = np.zeros_like(fill)
        for rule in rules:
            flagged |= rule.bad(_read_on(window_ds, mosaics[rule.field]))
    finally:
        for path in mosaics.values():
            gdal.Unlink(path)
    qa_bad = flagged & ~fill
    bad = fill | (qa_bad if not keep_qa else False)
    stored[:, bad] = product.nodata
    source = PreparedSource(f"/vsimem/stfusion_{uuid.uuid4().hex}.tif", product.name,
                            files.date, names, len(files.paths), pixels=width * height,
                            fill_pixels=int(fill.sum()),
                            qa_pixels=0 if keep_qa else int(qa_bad.sum()),
                            qa_rules=tuple(dict.fromkeys(f"{r.field}: {r.meaning}"
                                                         for r in rules)))
    _write_source(source, window_ds, stored, product)
    return source


def _write_source(source: PreparedSource, window_ds: gdal.Dataset, stored: np.ndarray,
                  product: Product) -> None:
    ds = gdal.GetDriverByName("GTiff").Create(source.path, window_ds.RasterXSize,
                                              window_ds.RasterYSize, len(stored),
                                              window_ds.GetRasterBand(1).DataType)
    ds.SetGeoTransform(window_ds.GetGeoTransform())
    ds.SetProjection(window_ds.GetProjection())
    ds.SetMetadataItem("ACQUISITIONDATE", source.date)
    for i, (name, values) in enumerate(zip(source.band_names, stored)):
        band = ds.GetRasterBand(i + 1)
        band.SetDescription(name)
        band.SetNoDataValue(product.nodata)
        band.SetScale(product.scale)
        band.SetOffset(product.offset)
        band.WriteArray(values)
    ds = None


def resample_products(paths: Sequence[str], reference_path: str, output_path: str,
                      keep_qa: bool = False, **options) -> Tuple[ResampleResult, PreparedSource]:
    """The product tiles ``paths`` (one product and date) stacked in the fine image's band
    order, masked, mosaicked and warped onto its grid (``options`` go to
    ``core.resample.resample_to_grid``: method, output_type, coregister, progress, ...)."""
    source = prepare_source(open_products(paths), reference_path, keep_qa)
    try:
        result = resample_to_grid(source.path, reference_path, output_path, bands="same",
                                  **options)
    finally:
        source.release()
    return result, source
