"""The acquisition date of an image, for the names users see (``fused 2001-10-17``).

QGIS-free. The date comes from the raster's ``ACQUISITIONDATE`` metadata (written by
stfusion:prepare_landsat and stfusion:resample_modis) or else from its file name:
``2001-10-17`` (or with ``_``/``.``), ``20011017`` or a MODIS ``A2001290`` (year, day of year).
"""
import datetime as dt
import os
import re
from typing import Optional

from osgeo import gdal

_NAME_PATTERNS = (
    (re.compile(r"(?<!\d)(\d{4})[-_.](\d{2})[-_.](\d{2})(?!\d)"), "%Y%m%d"),
    (re.compile(r"(?<![\dA-Za-z])A(\d{4})(\d{3})(?!\d)"), "%Y%j"),
    (re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)"), "%Y%m%d"),
)


def date_in_text(text: str) -> Optional[dt.date]:
    """The first plausible date written in ``text`` (1972-2100), or None."""
    for pattern, form in _NAME_PATTERNS:
        for match in pattern.finditer(text):
            try:
                found = dt.datetime.strptime("".join(match.groups()), form).date()
            except ValueError:
                continue
            if 1972 <= found.year <= 2100:
                return found
    return None


def titled(what: str, path: Optional[str]) -> str:
    """``what`` followed by the acquisition date of ``path`` when it has one."""
    date = acquisition_date(path) if path else None
    return f"{what} {date}" if date else what


def acquisition_date(path: str) -> Optional[dt.date]:
    """The date of the image at ``path``: ACQUISITIONDATE metadata, else its file name."""
    try:
        stamp = gdal.OpenEx(path, gdal.OF_RASTER).GetMetadataItem("ACQUISITIONDATE")
    except (RuntimeError, AttributeError):  # not a raster GDAL reads: the name may tell
        stamp = None
    return (date_in_text(stamp) if stamp else None) or date_in_text(os.path.basename(path))
