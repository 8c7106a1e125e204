"""The acquisition date of an image: for the names users see (``fused 2001-10-17``) and for
ordering a time series (stfusion:fuse_series).

QGIS-free. ``acquisition_date`` reads the raster's acquisition-date metadata
(``ACQUISITIONDATE`` as stfusion:prepare_landsat and stfusion:resample_modis write it,
Landsat's ``DATE_ACQUIRED``, MODIS's ``RANGEBEGINNINGDATE``), else the file name.
``date_in_text`` is the one parser of dates written in names and metadata values:
Landsat Collection 2 product ids (``LC08_L2SP_123032_20200412_20200822_02_T1``: the
acquisition date, not the processing date), ``YYYY-MM-DD`` (or ``_`` / ``.`` separated),
MODIS/VIIRS product ids (``MOD09GA.A2020103``: year and day of year), ``YYYYMMDD`` and
``YYYYDDD``; only years 1972-2100 count (Landsat 1 onwards: look-alike numbers are not
dates). ``image_date`` adds an explicit table (CSV ``file,date``) and an ``InputError``
naming the file when no date is found.
"""
import csv
import datetime as dt
import os
import re
from typing import Dict, List, Optional, Sequence

from osgeo import gdal

from .errors import InputError

METADATA_KEYS = ("ACQUISITIONDATE", "ACQUISITION_DATE", "DATE_ACQUIRED", "RANGEBEGINNINGDATE")
EARLIEST_YEAR, LATEST_YEAR = 1972, 2100
# (pattern, strptime format of its joined groups), tried in this order
_NAME_PATTERNS = (
    (re.compile(r"L[COTEM]0\d_L\w{3}_\d{6}_(\d{8})_\d{8}_\d{2}_\w{2}", re.I), "%Y%m%d"),
    (re.compile(r"(?<!\d)(\d{4})[-_.](\d{2})[-_.](\d{2})(?!\d)"), "%Y%m%d"),
    (re.compile(r"(?<![\dA-Za-z])A(\d{4})(\d{3})(?!\d)"), "%Y%j"),
    (re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)"), "%Y%m%d"),
    (re.compile(r"(?<!\d)(\d{4})(\d{3})(?!\d)"), "%Y%j"),
)


def date_in_text(text: str) -> Optional[dt.date]:
    """The first plausible date written in ``text`` (1972-2100), or None."""
    for pattern, form in _NAME_PATTERNS:
        for match in pattern.finditer(text):
            try:
                found = dt.datetime.strptime("".join(match.groups()), form).date()
            except ValueError:
                continue
            if EARLIEST_YEAR <= found.year <= LATEST_YEAR:
                return found
    return None


def titled(what: str, path: Optional[str]) -> str:
    """``what`` followed by the acquisition date of ``path`` when it has one."""
    date = acquisition_date(path) if path else None
    return f"{what} {date}" if date else what


def metadata_date(path: str) -> Optional[dt.date]:
    """The date in the raster's acquisition-date metadata (default domain), or None."""
    try:
        metadata = gdal.OpenEx(str(path), gdal.OF_RASTER).GetMetadata() or {}
    except (RuntimeError, AttributeError):  # not a raster GDAL reads: the name may tell
        return None
    for key in METADATA_KEYS:
        found = date_in_text(str(metadata[key])) if metadata.get(key) else None
        if found:
            return found
    return None


def acquisition_date(path: str) -> Optional[dt.date]:
    """The date of the image at ``path``: its metadata, else its file name."""
    return metadata_date(path) or date_in_text(os.path.basename(str(path)))


# ----------------------------------------------------------------------------- series

def parse_date(text: str, parameter: Optional[str] = None) -> dt.date:
    """A date written as YYYY-MM-DD (or any form ``date_in_text`` knows)."""
    found = date_in_text(str(text).strip())
    if found is None:
        raise InputError(parameter, f"'{text}' is not a date; write dates as YYYY-MM-DD.")
    return found


def read_dates_table(path: str, parameter: str = "DATES") -> Dict[str, dt.date]:
    """A CSV of ``file,date`` rows (a header row is allowed) -> {file: date}; files may be
    given by full path or by file name."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as stream:
            rows = [row for row in csv.reader(stream) if row and any(c.strip() for c in row)]
    except OSError as exc:
        raise InputError(parameter, f"cannot read '{path}': {exc.strerror}.") from exc
    table = {}
    for number, row in enumerate(rows, start=1):
        if len(row) < 2:
            raise InputError(parameter, f"line {number} of '{path}' needs two columns: "
                                        "file,date.")
        found = date_in_text(row[1].strip())
        if found is None:
            if number == 1:          # a header
                continue
            raise InputError(parameter, f"line {number} of '{path}': '{row[1]}' is not a "
                                        "date; write YYYY-MM-DD.")
        table[row[0].strip()] = found
    return table


def image_date(path: str, parameter: str, table: Optional[Dict[str, dt.date]] = None
               ) -> dt.date:
    """The acquisition date of ``path`` (the table, then ``acquisition_date``) or an
    InputError naming the file."""
    table = table or {}
    for key in (str(path), os.path.basename(str(path))):
        if key in table:
            return table[key]
    found = acquisition_date(path)
    if found is None:
        raise InputError(parameter, f"no acquisition date found for '{path}': name it with "
                                    "its date (e.g. landsat_2020-04-12.tif), set its "
                                    "ACQUISITIONDATE metadata, or list it in a DATES table "
                                    "(CSV: file,date).")
    return found


def dated_path(folder: str, prefix: str, date: dt.date) -> str:
    """The file of one date of a series: ``folder/PREFIX_YYYY-MM-DD.tif`` (fuse_series,
    resample_modis_series; the date parser reads it back)."""
    return os.path.join(folder, f"{prefix}_{date.isoformat()}.tif")


def image_dates(paths: Sequence[str], parameter: str,
                table: Optional[Dict[str, dt.date]] = None) -> List[dt.date]:
    """``image_date`` of every path; two images of one date are an error naming both."""
    dates = [image_date(p, parameter, table) for p in paths]
    seen: Dict[dt.date, str] = {}
    for path, date in zip(paths, dates):
        if date in seen:
            raise InputError(parameter, f"'{seen[date]}' and '{path}' have the same date "
                                        f"{date}; give one image per date.")
        seen[date] = path
    return dates


def parse_target_dates(text: str, parameter: str = "TARGET_DATES") -> Optional[List[dt.date]]:
    """TARGET_DATES: empty -> None (the caller's default); ``START/END[/STEP]`` (step in days,
    default 1) -> every date of the range; else dates separated by commas, semicolons or
    spaces."""
    text = (text or "").strip()
    if not text:
        return None
    if "/" not in text:
        return sorted({parse_date(p, parameter) for p in re.split(r"[,;\s]+", text) if p})
    parts = [p.strip() for p in text.split("/")]
    if len(parts) not in (2, 3):
        raise InputError(parameter, f"'{text}': write a range as START/END or "
                                    "START/END/STEP (e.g. 2020-03-01/2020-04-30/8).")
    start, end = parse_date(parts[0], parameter), parse_date(parts[1], parameter)
    step = parts[2] if len(parts) == 3 else "1"
    if not step.isdigit() or int(step) < 1:
        raise InputError(parameter, f"'{step}' is not a step; give whole days >= 1.")
    if end < start:
        raise InputError(parameter, f"the range ends ({end}) before it starts ({start}).")
    return [start + dt.timedelta(days=i) for i in range(0, (end - start).days + 1, int(step))]
