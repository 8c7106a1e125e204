"""Small stand-ins with the structure of real downloads: a Landsat Collection 2 Level-2 scene
(folder and .tar) and MODIS HDF-EOS (HDF4) tiles written with pyhdf. No real product is
committed; every value here is set by the tests."""
import datetime
import math
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np
from osgeo import gdal, osr

WIDTH, HEIGHT = 40, 30
UTM_33N = 32633
ORIGIN = (500000.0, 5100000.0)
CLEAR_OLI = 21824   # QA_PIXEL of a clear land pixel: clear bit 6, low confidences
# (row, col) of the pixels carrying each QA condition in the fixtures
QA_PIXELS = {"fill": (0, 0), "dilated_cloud": (1, 1), "cirrus": (2, 2), "cloud": (3, 3),
             "cloud_shadow": (4, 4), "snow": (5, 5)}
QA_BIT = {"fill": 0, "dilated_cloud": 1, "cirrus": 2, "cloud": 3, "cloud_shadow": 4,
          "snow": 5}
SATURATED_PIXEL = (6, 6)       # saturated in a band the output uses
OTHER_SATURATION_PIXEL = (7, 7)  # saturated only in a band the output does not use
SENSORS = {"LANDSAT_8": ("LC08", "OLI_TIRS", (2, 3, 4, 5, 6, 7), range(1, 8)),
           "LANDSAT_9": ("LC09", "OLI_TIRS", (2, 3, 4, 5, 6, 7), range(1, 8)),
           "LANDSAT_7": ("LE07", "ETM", (1, 2, 3, 4, 5, 7), (1, 2, 3, 4, 5, 7)),
           "LANDSAT_5": ("LT05", "TM", (1, 2, 3, 4, 5, 7), (1, 2, 3, 4, 5, 7))}


@dataclass
class LandsatFixture:
    folder: Path
    product_id: str
    date: str
    numbers: Dict[int, np.ndarray]       # Landsat band number -> stored uint16 values
    output_bands: Tuple[int, ...]        # Landsat band numbers of blue..swir2

    @property
    def mtl(self) -> Path:
        return self.folder / f"{self.product_id}_MTL.txt"

    def reflectance(self) -> np.ndarray:
        """blue..swir2 as reflectance (2.75e-5 * DN - 0.2), float64."""
        return np.stack([self.numbers[n] * 2.75e-5 - 0.2 for n in self.output_bands])

    def tar(self, target: Path) -> Path:
        with tarfile.open(target, "w") as archive:
            for path in sorted(self.folder.iterdir()):
                archive.add(path, arcname=path.name)
        return target


def _write_tif(path: Path, values: np.ndarray) -> None:
    ds = gdal.GetDriverByName("GTiff").Create(str(path), WIDTH, HEIGHT, 1, gdal.GDT_UInt16,
                                              ["COMPRESS=DEFLATE"])
    ds.SetGeoTransform((ORIGIN[0], 30.0, 0.0, ORIGIN[1], 0.0, -30.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(UTM_33N)
    ds.SetProjection(srs.ExportToWkt())
    ds.GetRasterBand(1).WriteArray(values.astype(np.uint16))
    ds = None


def _mtl_text(groups: Dict[str, Dict[str, str]]) -> str:
    lines = ["GROUP = LANDSAT_METADATA_FILE"]
    for group, values in groups.items():
        lines.append(f"  GROUP = {group}")
        for key, value in values.items():
            quoted = value if value.replace(".", "").replace("-", "").replace("e", "")\
                .isdigit() else f'"{value}"'
            lines.append(f"    {key} = {quoted}")
        lines.append(f"  END_GROUP = {group}")
    return "\n".join(lines + ["END_GROUP = LANDSAT_METADATA_FILE", "END", ""])


def _mtl_xml(groups: Dict[str, Dict[str, str]]) -> str:
    body = "".join(f"  <{g}>\n" + "".join(f"    <{k}>{v}</{k}>\n" for k, v in values.items())
                   + f"  </{g}>\n" for g, values in groups.items())
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<LANDSAT_METADATA_FILE>\n' + body
            + "</LANDSAT_METADATA_FILE>\n")


def make_c2l2_scene(folder: Path, spacecraft: str = "LANDSAT_8", date: str = "2021-07-14",
                    level: str = "L2SP", collection: str = "02", path_row: str = "190027",
                    skip_files: Tuple[str, ...] = ()) -> LandsatFixture:
    """A 40 x 30 C2 L2 scene in UTM 33N with the real file names, MTL.txt and MTL.xml keys,
    uint16 SR bands (DN = 8000 + 1000 * band + 37 * row + col), QA_PIXEL with one pixel per
    condition (QA_PIXELS) and QA_RADSAT saturation at SATURATED_PIXEL."""
    prefix, sensor, output_bands, sr_bands = SENSORS[spacecraft]
    compact = date.replace("-", "")
    product = f"{prefix}_{level}_{path_row}_{compact}_20210720_{collection}_T1"
    folder.mkdir(parents=True, exist_ok=True)
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    numbers = {n: 8000 + 1000 * n + 37 * rows + cols for n in sr_bands}
    qa = np.full((HEIGHT, WIDTH), CLEAR_OLI, np.uint16)
    for name, (row, col) in QA_PIXELS.items():
        qa[row, col] = 1 << QA_BIT[name]
    fill_row, fill_col = QA_PIXELS["fill"]
    for values in numbers.values():
        values[fill_row, fill_col] = 0
    radsat = np.zeros((HEIGHT, WIDTH), np.uint16)
    radsat[SATURATED_PIXEL] = 1 << (output_bands[3] - 1)                   # NIR
    radsat[OTHER_SATURATION_PIXEL] = 1 << (8 if prefix[:3] == "LC0" else 5)  # B9 / thermal
    files = {}
    for n, values in numbers.items():
        files[f"FILE_NAME_BAND_{n}"] = f"{product}_SR_B{n}.TIF"
    files["FILE_NAME_QUALITY_L1_PIXEL"] = f"{product}_QA_PIXEL.TIF"
    files["FILE_NAME_QUALITY_L1_RADIOMETRIC_SATURATION"] = f"{product}_QA_RADSAT.TIF"
    arrays = {**{f"FILE_NAME_BAND_{n}": v for n, v in numbers.items()},
              "FILE_NAME_QUALITY_L1_PIXEL": qa,
              "FILE_NAME_QUALITY_L1_RADIOMETRIC_SATURATION": radsat}
    for key, name in files.items():
        if not any(name.endswith(skip) for skip in skip_files):
            _write_tif(folder / name, arrays[key])
    groups = {
        "PRODUCT_CONTENTS": {"LANDSAT_PRODUCT_ID": product, "PROCESSING_LEVEL": level,
                             "COLLECTION_NUMBER": collection, **files,
                             "FILE_NAME_METADATA_ODL": f"{product}_MTL.txt"},
        "IMAGE_ATTRIBUTES": {"SPACECRAFT_ID": spacecraft, "SENSOR_ID": sensor,
                             "DATE_ACQUIRED": date, "SCENE_CENTER_TIME": "09:51:27.1Z"},
        "LEVEL2_SURFACE_REFLECTANCE_PARAMETERS": {
            **{f"REFLECTANCE_MULT_BAND_{n}": "2.75e-05" for n in sr_bands},
            **{f"REFLECTANCE_ADD_BAND_{n}": "-0.2" for n in sr_bands}},
    }
    (folder / f"{product}_MTL.txt").write_text(_mtl_text(groups))
    (folder / f"{product}_MTL.xml").write_text(_mtl_xml(groups))
    return LandsatFixture(folder, product, date, numbers, output_bands)


def make_collection1_mtl(folder: Path) -> Path:
    """The MTL.txt of a Collection 1 Level-1 scene (its first groups, as USGS wrote them)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "LC08_L1TP_190027_20180714_20180730_01_T1_MTL.txt"
    path.write_text('GROUP = L1_METADATA_FILE\n  GROUP = METADATA_FILE_INFO\n'
                    '    LANDSAT_PRODUCT_ID = "LC08_L1TP_190027_20180714_20180730_01_T1"\n'
                    '    COLLECTION_NUMBER = 01\n  END_GROUP = METADATA_FILE_INFO\n'
                    'END_GROUP = L1_METADATA_FILE\nEND\n')
    return path


# -- MODIS HDF-EOS (HDF4) ------------------------------------------------------------------
TILE_METRES = 1111950.519667          # side of a MODIS sinusoidal tile
SPHERE = 6371007.181
WORLD_UL = (-20015109.354, 10007554.677)
HDF_TYPES = {"int8": "INT8", "uint8": "UINT8", "int16": "INT16", "uint16": "UINT16",
             "uint32": "UINT32"}
MOD09_NUMBERS = {"blue": 3, "green": 4, "red": 1, "nir": 2, "swir1": 6, "swir2": 7}


@dataclass
class HdfField:
    grid: str
    name: str
    values: np.ndarray
    attributes: Dict[str, object]


def sinusoidal_lonlat(x: float, y: float) -> Tuple[float, float]:
    """Longitude, latitude (degrees) of a point of the MODIS sinusoidal grid (sphere)."""
    lat = y / SPHERE
    return float(np.degrees(x / (SPHERE * np.cos(lat)))), float(np.degrees(lat))


def pixel_of_lonlat(ds: gdal.Dataset, lon: float, lat: float) -> Tuple[int, int]:
    """(column, row) of the pixel of ``ds`` (through its own georeference) holding lon/lat."""
    wgs84, own = osr.SpatialReference(), osr.SpatialReference(ds.GetProjection())
    wgs84.ImportFromEPSG(4326)
    for srs in (wgs84, own):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    x, y = osr.CoordinateTransformation(wgs84, own).TransformPoint(lon, lat)[:2]
    inverse = gdal.InvGeoTransform(ds.GetGeoTransform())
    return (math.floor(inverse[0] + x * inverse[1] + y * inverse[2]),
            math.floor(inverse[3] + x * inverse[4] + y * inverse[5]))


def tile_origin(h: int, v: int) -> Tuple[float, float]:
    return WORLD_UL[0] + h * TILE_METRES, WORLD_UL[1] - v * TILE_METRES


H5_TYPES = {"int16": "H5T_NATIVE_SHORT", "uint8": "H5T_NATIVE_UCHAR",
            "uint16": "H5T_NATIVE_USHORT"}


def _struct_metadata(grids: Dict[str, Tuple[float, float, float, int, int]],
                     fields: Sequence[HdfField], eos5: bool = False) -> str:
    """StructMetadata.0 as HDF-EOS writes it (tab-indented ODL: the library parses tabs);
    HDF-EOS5 (``eos5``) prefixes its names with HE5_ and names HDF5 types."""
    he5 = "HE5_" if eos5 else ""
    lines = ["GROUP=SwathStructure", "END_GROUP=SwathStructure", "GROUP=GridStructure"]
    for number, (grid, (x0, y0, pixel, rows, cols)) in enumerate(grids.items(), 1):
        lines += [f"\tGROUP=GRID_{number}", f'\t\tGridName="{grid}"', f"\t\tXDim={cols}",
                  f"\t\tYDim={rows}", f"\t\tUpperLeftPointMtrs=({x0:.6f},{y0:.6f})",
                  f"\t\tLowerRightMtrs=({x0 + cols * pixel:.6f},{y0 - rows * pixel:.6f})",
                  f"\t\tProjection={he5}GCTP_SNSOID",
                  f"\t\tProjParams=({SPHERE:.6f},0,0,0,0,0,0,0,0,0,0,0,0)",
                  "\t\tSphereCode=-1", f"\t\tGridOrigin={he5}HDFE_GD_UL",
                  "\t\tGROUP=Dimension", "\t\tEND_GROUP=Dimension", "\t\tGROUP=DataField"]
        for index, item in enumerate([f for f in fields if f.grid == grid], 1):
            kind = H5_TYPES[item.values.dtype.name] if eos5 else \
                "DFNT_" + HDF_TYPES[item.values.dtype.name]
            lines += [f"\t\t\tOBJECT=DataField_{index}", f'\t\t\t\tDataFieldName="{item.name}"',
                      f"\t\t\t\tDataType={kind}", '\t\t\t\tDimList=("YDim","XDim")',
                      f"\t\t\tEND_OBJECT=DataField_{index}"]
        lines += ["\t\tEND_GROUP=DataField", "\t\tGROUP=MergedFields",
                  "\t\tEND_GROUP=MergedFields", f"\tEND_GROUP=GRID_{number}"]
    return "\n".join(lines + ["END_GROUP=GridStructure", "GROUP=PointStructure",
                              "END_GROUP=PointStructure", "END", ""])


def _core_metadata(short_name: str, date: str) -> str:
    """The ECS inventory metadata items GDAL reports (CoreMetadata.0)."""
    def item(name, value):
        return (f"    OBJECT                 = {name}\n      NUM_VAL              = 1\n"
                f'      VALUE                = "{value}"\n    END_OBJECT             = {name}\n')
    return ("\nGROUP                  = INVENTORYMETADATA\n  GROUPTYPE            = MASTERGROUP\n"
            "\n  GROUP                  = COLLECTIONDESCRIPTIONCLASS\n\n"
            + item("SHORTNAME", short_name) + item("VERSIONID", "61")
            + "\n  END_GROUP              = COLLECTIONDESCRIPTIONCLASS\n"
            "\n  GROUP                  = RANGEDATETIME\n\n" + item("RANGEBEGINNINGDATE", date)
            + "\n  END_GROUP              = RANGEDATETIME\n\nEND_GROUP              = "
            "INVENTORYMETADATA\n\nEND\n")


def write_hdf_eos(path: Path, short_name: str, date: str,
                  grids: Dict[str, Tuple[float, float, float, int, int]],
                  fields: Sequence[HdfField]) -> Path:
    """An HDF4 file with the HDF-EOS grid structure: one Vgroup per grid (class GRID) with
    'Data Fields' and 'Grid Attributes' Vgroups, the SDS of each field in 'Data Fields',
    StructMetadata.0 and CoreMetadata.0. ``grids``: name -> (upper-left x, y, pixel size,
    rows, columns) in the sinusoidal projection."""
    import pyhdf.V  # noqa: F401  (HDF.vgstart needs the module loaded)
    from pyhdf.HDF import HC, HDF
    from pyhdf.SD import SD, SDC
    sd = SD(str(path), SDC.WRITE | SDC.CREATE | SDC.TRUNC)
    refs = {grid: [] for grid in grids}
    for item in fields:
        sds = sd.create(item.name, getattr(SDC, HDF_TYPES[item.values.dtype.name]),
                        item.values.shape)
        sds.dim(0).setname(f"YDim:{item.grid}")
        sds.dim(1).setname(f"XDim:{item.grid}")
        sds[:] = item.values
        for name, value in item.attributes.items():
            if name == "_FillValue":
                sds.setfillvalue(value)
            else:
                setattr(sds, name, value)
        refs[item.grid].append(sds.ref())
        sds.endaccess()
    sd.attr("StructMetadata.0").set(SDC.CHAR, _struct_metadata(grids, fields))
    sd.attr("CoreMetadata.0").set(SDC.CHAR, _core_metadata(short_name, date))
    sd.end()
    hdf = HDF(str(path), HC.WRITE)
    vgroups = hdf.vgstart()
    for grid, grid_refs in refs.items():
        root = vgroups.create(grid)
        root._class = "GRID"
        data, attributes = vgroups.create("Data Fields"), vgroups.create("Grid Attributes")
        for group in (data, attributes):
            group._class = "GRID Vgroup"
            root.insert(group)
        for ref in grid_refs:
            data.add(HC.DFTAG_NDG, ref)
        for group in (data, attributes, root):
            group.detach()
    vgroups.end()
    hdf.close()
    return path


def reflectance_numbers(rows: int, cols: int, offset: int = 0) -> Dict[int, np.ndarray]:
    """MOD09 band number -> int16 values 1000 * band + 10 * row + col + offset."""
    r, c = np.mgrid[0:rows, 0:cols]
    return {n: (1000 * n + 10 * r + c + offset).astype(np.int16) for n in range(1, 8)}


@dataclass
class ModisFixture:
    path: Path
    grid: Tuple[float, float, float, int, int]     # x0, y0, pixel, rows, cols (500 m)
    numbers: Dict[object, np.ndarray]   # MOD09 band number / VIIRS field -> stored values


def make_mod09ga(folder: Path, h: int = 18, v: int = 4, col0: int = 0, row0: int = 0,
                 size: int = 24, date: str = "2021-07-14", offset: int = 0,
                 state: Dict[Tuple[int, int], int] = None, qc: Dict[Tuple[int, int], int] = None,
                 fill: Tuple[Tuple[int, int], ...] = (), short_name: str = "MOD09GA"
                 ) -> ModisFixture:
    """A MOD09GA (or MYD09GA) tile cut to ``size`` x ``size`` 500 m pixels starting at pixel
    (row0, col0) of tile h/v: grids MODIS_Grid_500m_2D (sur_refl_b01_1..b07_1, QC_500m_1) and
    MODIS_Grid_1km_2D (state_1km_1), real attributes; ``state`` / ``qc``: {(row, col): value}
    at 1 km / 500 m; ``fill``: 500 m pixels at the fill value in every band."""
    x0, y0 = tile_origin(h, v)
    pixel = TILE_METRES / 2400
    x0, y0 = x0 + col0 * pixel, y0 - row0 * pixel
    numbers = reflectance_numbers(size, size, offset)
    for row, col in fill:
        for values in numbers.values():
            values[row, col] = -28672
    state_values = np.zeros((size // 2, size // 2), np.uint16) | (1 << 3)  # clear land
    for (row, col), value in (state or {}).items():
        state_values[row, col] = value
    qc_values = np.zeros((size, size), np.uint32)
    for (row, col), value in (qc or {}).items():
        qc_values[row, col] = value
    grid500, grid1k = "MODIS_Grid_500m_2D", "MODIS_Grid_1km_2D"
    reflectance = {"_FillValue": -28672, "scale_factor": 0.0001, "add_offset": 0.0,
                   "units": "reflectance", "valid_range": [-100, 16000]}
    fields = [HdfField(grid1k, "state_1km_1", state_values, {"_FillValue": 65535})]
    fields += [HdfField(grid500, f"sur_refl_b{n:02d}_1", numbers[n], reflectance)
               for n in range(1, 8)]
    fields.append(HdfField(grid500, "QC_500m_1", qc_values, {"_FillValue": 787410671}))
    compact = datetime_compact(date)
    path = folder / f"{short_name}.A{compact}.h{h:02d}v{v:02d}.061.2021197023152.hdf"
    folder.mkdir(parents=True, exist_ok=True)
    write_hdf_eos(path, short_name, date, {grid1k: (x0, y0, 2 * pixel, size // 2, size // 2),
                                           grid500: (x0, y0, pixel, size, size)}, fields)
    return ModisFixture(path, (x0, y0, pixel, size, size), numbers)


def make_single_grid_product(folder: Path, short_name: str, grid: str, pixel_divisor: int,
                             fields: Sequence[Tuple[str, np.ndarray, Dict[str, object]]],
                             h: int = 18, v: int = 4, date: str = "2021-07-14") -> ModisFixture:
    """A product with one grid (MOD09A1, MCD43A4, MOD13Q1/A1, MOD11A1) at tile h/v's corner;
    ``pixel_divisor``: pixels per tile side (2400 for 500 m, 4800 for 250 m, 1200 for 1 km)."""
    x0, y0 = tile_origin(h, v)
    pixel = TILE_METRES / pixel_divisor
    rows, cols = fields[0][1].shape
    path = folder / f"{short_name}.A{datetime_compact(date)}.h{h:02d}v{v:02d}.061.2021204.hdf"
    folder.mkdir(parents=True, exist_ok=True)
    write_hdf_eos(path, short_name, date, {grid: (x0, y0, pixel, rows, cols)},
                  [HdfField(grid, name, values, attributes)
                   for name, values, attributes in fields])
    return ModisFixture(path, (x0, y0, pixel, rows, cols), {})


def datetime_compact(date: str) -> str:
    """'2021-07-14' -> '2021195' (year and day of year, as in MODIS file names)."""
    day = datetime.date.fromisoformat(date)
    return f"{day.year}{day.timetuple().tm_yday:03d}"


def prepared(files, reference: str, keep_qa: bool = False):
    """``modis_products.prepare_source`` read back and released: (source, raster info,
    values, ACQUISITIONDATE)."""
    from stfusion.core import modis_products, raster
    source = modis_products.prepare_source(files, reference, keep_qa)
    try:
        return (source, raster.raster_info(source.path), raster.read_raster(source.path),
                gdal.Open(source.path).GetMetadataItem("ACQUISITIONDATE"))
    finally:
        source.release()


def write_reference(path: Path, x0: float, y0: float, pixel: float, rows: int, cols: int,
                    band_names: Sequence[str], wkt: str) -> Path:
    """A fine image (zeros) on the given grid with named bands: the target of resampling."""
    ds = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, len(band_names),
                                              gdal.GDT_Int16)
    ds.SetGeoTransform((x0, pixel, 0.0, y0, 0.0, -pixel))
    ds.SetProjection(wkt)
    for i, name in enumerate(band_names):
        band = ds.GetRasterBand(i + 1)
        band.SetDescription(name)
        band.Fill(1000)
        band.SetScale(1e-4)
    ds = None
    return path


# -- VIIRS HDF-EOS5 (HDF5) -----------------------------------------------------------------
def write_hdf_eos5(path: Path, short_name: str, date: str,
                   grids: Dict[str, Tuple[float, float, float, int, int]],
                   fields: Sequence[HdfField]) -> Path:
    """An HDF5 file with the HDF-EOS5 grid structure of the VIIRS land products:
    ``/HDFEOS/GRIDS/<grid>/Data Fields/<field>`` datasets with their attributes,
    ``/HDFEOS INFORMATION/StructMetadata.0`` and the file attributes (ShortName,
    RangeBeginningDate) at the root."""
    import h5py
    with h5py.File(path, "w") as h5:
        h5.attrs["ShortName"] = np.bytes_(short_name)
        h5.attrs["LongName"] = np.bytes_(f"VIIRS {short_name} (test fixture)")
        h5.attrs["RangeBeginningDate"] = np.bytes_(date)
        h5.attrs["RangeBeginningTime"] = np.bytes_("00:00:00.000000")
        h5.require_group("HDFEOS/ADDITIONAL/FILE_ATTRIBUTES")
        h5.create_dataset("HDFEOS INFORMATION/StructMetadata.0",
                          data=np.bytes_(_struct_metadata(grids, fields, eos5=True)))
        h5["HDFEOS INFORMATION"].attrs["HDFEOSVersion"] = np.bytes_("HDFEOS_5.1.15")
        for item in fields:
            dataset = h5.create_dataset(f"HDFEOS/GRIDS/{item.grid}/Data Fields/{item.name}",
                                        data=item.values, chunks=True, compression="gzip")
            for name, value in item.attributes.items():
                dataset.attrs[name] = np.array(value, dtype=item.values.dtype) \
                    if name in ("_FillValue", "valid_range") else value
    return path


VNP09_M_NUMBERS = {"blue": 3, "green": 4, "swir2": 11}
VNP09_I_NUMBERS = {"red": 1, "nir": 2, "swir1": 3}


def make_vnp09ga(folder: Path, h: int = 18, v: int = 4, col0: int = 0, row0: int = 0,
                 size: int = 24, date: str = "2021-07-14", qf1: Dict[Tuple[int, int], int] = None,
                 qf2: Dict[Tuple[int, int], int] = None, fill: Tuple[Tuple[int, int], ...] = (),
                 fill_1km: Tuple[Tuple[int, int], ...] = (), short_name: str = "VNP09GA",
                 version: str = "002") -> ModisFixture:
    """A VNP09GA (or VJ109GA) tile cut to ``size`` x ``size`` 500 m pixels from pixel
    (row0, col0) of tile h/v: the 500 m grid with SurfReflect_I1_1..I3_1 (values 1000 * n +
    10 * row + col) and the 1 km grid with SurfReflect_M3_1, M4_1, M11_1 (values 100 * m +
    row + col at 1 km) and the QF1/QF2 flags; ``qf1``/``qf2``: {(row, col): value} at 1 km
    (clear land elsewhere); ``fill`` / ``fill_1km``: 500 m / 1 km pixels at the fill value
    in every I / M band.
    Version 001 names its grids VNP_Grid_*, 002 VIIRS_Grid_*. ``numbers``: field -> values."""
    x0, y0 = tile_origin(h, v)
    pixel = TILE_METRES / 2400
    x0, y0 = x0 + col0 * pixel, y0 - row0 * pixel
    half = size // 2
    r, c = np.mgrid[0:size, 0:size]
    r1, c1 = np.mgrid[0:half, 0:half]
    numbers = {f"SurfReflect_I{n}_1": (1000 * n + 10 * r + c).astype(np.int16)
               for n in VNP09_I_NUMBERS.values()}
    numbers.update({f"SurfReflect_M{m}_1": (100 * m + r1 + c1).astype(np.int16)
                    for m in VNP09_M_NUMBERS.values()})
    for row, col in fill:
        for n in VNP09_I_NUMBERS.values():
            numbers[f"SurfReflect_I{n}_1"][row, col] = -28672
    for row, col in fill_1km:
        for m in VNP09_M_NUMBERS.values():
            numbers[f"SurfReflect_M{m}_1"][row, col] = -28672
    flags = {}
    for name, given in (("SurfReflect_QF1_1", qf1), ("SurfReflect_QF2_1", qf2)):
        flags[name] = np.zeros((half, half), np.uint8)
        for (row, col), value in (given or {}).items():
            flags[name][row, col] = value
    prefix = "VNP" if version == "001" else "VIIRS"
    grid500, grid1k = f"{prefix}_Grid_500m_2D", f"{prefix}_Grid_1km_2D"
    reflectance = {"_FillValue": -28672, "scale_factor": 0.0001, "add_offset": 0.0,
                   "units": "reflectance", "valid_range": [-100, 16000]}
    fields = [HdfField(grid500 if "_I" in name else grid1k, name, values, reflectance)
              for name, values in numbers.items()]
    fields += [HdfField(grid1k, name, values, {"_FillValue": 255})
               for name, values in flags.items()]
    path = folder / f"{short_name}.A{datetime_compact(date)}.h{h:02d}v{v:02d}.{version}." \
                    "2021196093512.h5"
    folder.mkdir(parents=True, exist_ok=True)
    write_hdf_eos5(path, short_name, date, {grid1k: (x0, y0, 2 * pixel, half, half),
                                            grid500: (x0, y0, pixel, size, size)}, fields)
    return ModisFixture(path, (x0, y0, pixel, size, size), numbers)
