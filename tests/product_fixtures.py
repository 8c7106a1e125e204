"""Small stand-ins with the structure of real downloads: a Landsat Collection 2 Level-2 scene
(folder and .tar). No real product is committed; every value here is set by the tests."""
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Tuple

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
