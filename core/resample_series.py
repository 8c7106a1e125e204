"""Many MODIS dates onto one fine grid in one run: one GeoTIFF per date, named by its date,
ready to be the coarse list of fuse_series.

The inputs are MODIS rasters (one per date) or HDF product files as downloaded (the tiles of
one date are mosaicked, as resample_modis does with PRODUCTS). Each date's file is written
atomically by core.resample; inside a Processing run (``atomic.run_outputs``) the dates are
published together when all are done, so a failed or cancelled run writes none.
"""
import datetime as dt
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from . import acquisition, atomic, modis_products, resample
from .errors import InputError
from .tiling import no_progress


@dataclass
class DateInputs:
    """The input files of one date: one raster, or the product tiles of that date."""
    date: dt.date
    paths: List[str] = field(default_factory=list)
    products: bool = False


@dataclass
class ResampledDate:
    date: dt.date
    output: str
    result: resample.ResampleResult


def group_by_date(paths: Sequence[str], parameter: str = "INPUTS") -> List[DateInputs]:
    """The inputs by acquisition date (metadata or file name), oldest first; several product
    files of one date are the tiles of a mosaic, two rasters of one date are an error."""
    groups: Dict[dt.date, DateInputs] = {}
    for path in paths:
        date = acquisition.image_date(path, parameter)
        products = modis_products.is_product_file(path)
        group = groups.setdefault(date, DateInputs(date, products=products))
        if group.paths and not (products and group.products):
            raise InputError(parameter, f"'{group.paths[0]}' and '{path}' have the same date "
                                        f"{date}; give one MODIS raster per date (only HDF "
                                        "product tiles of one date are mosaicked).")
        group.paths.append(str(path))
    return [groups[date] for date in sorted(groups)]


def resample_series(paths: Sequence[str], reference_path: str, folder: str,
                    prefix: str = "modis", bands: resample.BandSpec = resample.MOD09_BANDS,
                    nodata: Optional[float] = None, keep_qa: bool = False,
                    progress: Optional[Callable[[float], None]] = None,
                    **options) -> List[ResampledDate]:
    """Every date of ``paths`` onto the grid of ``reference_path`` as
    ``folder/prefix_YYYY-MM-DD.tif``. ``bands`` and ``nodata`` apply to rasters (product
    files follow the reference's band names); ``options`` go to ``resample_to_grid``
    (method, output_type, coregister, is_canceled)."""
    groups = group_by_date(paths)
    if not groups:
        raise InputError("INPUTS", "no MODIS image given; choose one raster or product file "
                                   "per date.")
    outputs = [acquisition.dated_path(folder, prefix, group.date) for group in groups]
    atomic.require_inputs_spared(outputs, [reference_path, *paths])
    os.makedirs(folder, exist_ok=True)
    progress = progress or no_progress
    done: List[ResampledDate] = []
    for number, (group, output) in enumerate(zip(groups, outputs)):
        def date_progress(share, number=number):
            progress((number + share) / len(groups))
        try:
            if group.products:
                result, _source = modis_products.resample_products(
                    group.paths, reference_path, output, keep_qa=keep_qa,
                    progress=date_progress, **options)
            else:
                result = resample.resample_to_grid(group.paths[0], reference_path, output,
                                                   bands=bands, nodata=nodata,
                                                   progress=date_progress, **options)
        except resample.ResampleError as exc:   # say which date and file
            raise resample.ResampleError(
                exc.parameter, f"{group.date} ({', '.join(map(os.path.basename, group.paths))})"
                               f": {exc}") from exc
        except InputError as exc:
            if exc.parameter != modis_products.PARAMETER:
                raise
            raise InputError("INPUTS", exc.message) from exc
        done.append(ResampledDate(group.date, output, result))
    return done
