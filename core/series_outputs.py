"""What a series run writes besides the dates' GeoTIFFs: the VRT stack, the SOURCES table and
the HTML series report. QGIS-free."""
import csv
import datetime as dt
import io
import os
from typing import Dict, List, Sequence, Tuple
from xml.sax.saxutils import escape

import numpy as np
from osgeo import gdal

from . import atomic, raster, report
from .series import SeriesResult

SAMPLE_POINTS = ((0.25, 0.25), (0.25, 0.75), (0.5, 0.5), (0.75, 0.25), (0.75, 0.75))
QUICKLOOKS = 8
QUICKLOOK_SIZE = 200


# ----------------------------------------------------------------------------- VRT stack

def write_stack(path: str, outputs: Dict[dt.date, str], info: raster.RasterInfo) -> str:
    """A VRT of every date's bands in date order (date 1 band 1, date 1 band 2, ...); each
    band's description is 'YYYY-MM-DD name' and its metadata holds DATE and BAND_NAME."""
    encoding = raster.OutputEncoding.like(info)
    grid = info.grid
    type_name = gdal.GetDataTypeName(encoding.gdal_type)
    bands = []
    for date in sorted(outputs):
        source = os.path.relpath(outputs[date], os.path.dirname(os.path.abspath(path)))
        for number, name in enumerate(info.band_names, start=1):
            bands.append(
                f'  <VRTRasterBand dataType="{type_name}" band="{len(bands) + 1}">\n'
                f"    <Description>{escape(f'{date.isoformat()} {name}')}</Description>\n"
                f'    <Metadata><MDI key="DATE">{date.isoformat()}</MDI>'
                f'<MDI key="BAND_NAME">{escape(name)}</MDI></Metadata>\n'
                f"    <NoDataValue>{encoding.nodata!r}</NoDataValue>\n"
                f"    <Offset>{encoding.offset!r}</Offset><Scale>{encoding.scale!r}</Scale>\n"
                f'    <SimpleSource><SourceFilename relativeToVRT="1">{escape(source)}'
                f"</SourceFilename><SourceBand>{number}</SourceBand></SimpleSource>\n"
                f"  </VRTRasterBand>\n")
    dates = ",".join(d.isoformat() for d in sorted(outputs))
    text = (f'<VRTDataset rasterXSize="{grid.width}" rasterYSize="{grid.height}">\n'
            f"  <SRS>{escape(grid.crs_wkt)}</SRS>\n"
            f"  <GeoTransform>{', '.join(repr(v) for v in grid.geotransform)}</GeoTransform>\n"
            f'  <Metadata><MDI key="DATES">{dates}</MDI>'
            f'<MDI key="BANDS_PER_DATE">{info.band_count}</MDI></Metadata>\n'
            + "".join(bands) + "</VRTDataset>\n")
    atomic.write_text(path, text)
    return path


# ----------------------------------------------------------------------------- SOURCES

SOURCES_HEADER = ("date", "output", "coarse", "pairs", "gap_days", "share", "nodata_share",
                  "correlation", "temporal_ratio", "trust")


def sources_rows(result: SeriesResult) -> List[Tuple]:
    """One row per (date, candidate that gave pixels), then one per date left out."""
    grid_pixels = None
    rows = []
    for entry in result.plan.entries:
        sources = result.sources[entry.date]
        if grid_pixels is None:
            info = raster.raster_info(result.outputs[entry.date])
            grid_pixels = info.grid.width * info.grid.height
        used = sum(s["pixels"] for s in sources)
        nodata = round(1.0 - used / grid_pixels, 6)
        for source in sources:
            if source["pixels"]:
                rows.append((entry.date.isoformat(), os.path.basename(result.outputs[entry.date]),
                             os.path.basename(entry.coarse), source["pairs"],
                             " ".join(f"{g:+d}" for g in source["gap_days"]),
                             round(source["pixels"] / grid_pixels, 6), nodata)
                            + _trust_columns(source.get("trust") or []))
        if not used:
            rows.append((entry.date.isoformat(), os.path.basename(result.outputs[entry.date]),
                         os.path.basename(entry.coarse), "", "", 0.0, nodata, "", "", ""))
    rows += [(date.isoformat(), "", "", f"left out: {why}", "", "", "", "", "", "")
             for date, why in result.plan.skipped]
    return rows


def _trust_columns(trusts: List[Dict]) -> Tuple[str, str, str]:
    """correlation, temporal_ratio and the trust notes of a source's pairs, pair by pair."""
    return (" ".join(f"{t['correlation']:.3f}" for t in trusts),
            " ".join(f"{t['temporal_ratio']:.3f}" for t in trusts),
            "; ".join(t["note"] for t in trusts))


def write_sources(path: str, result: SeriesResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SOURCES_HEADER)
    writer.writerows(sources_rows(result))
    atomic.write_text(path, buffer.getvalue())
    return path


# ----------------------------------------------------------------------------- report

def _scene_means(path: str, mask: str = None) -> np.ndarray:
    image = report.read_decimated(path, 256)
    if mask:
        clear = report.read_decimated(mask, 256, bands=[1])[0] == 0
        image[:, ~clear] = np.nan
    return np.array([np.nanmean(b) if np.isfinite(b).any() else np.nan for b in image])


def _point_values(path: str, points: Sequence[Tuple[int, int]], mask: str = None) -> np.ndarray:
    values = np.array([raster.read_window(path, x, y, 1, 1)[:, 0, 0] for x, y in points])
    if mask:
        clear = np.array([raster.read_window(mask, x, y, 1, 1, bands=[1])[0, 0, 0] == 0
                          for x, y in points])
        values[~clear] = np.nan
    return values        # (points, bands)


def _day(date: dt.date, first: dt.date) -> int:
    return (date - first).days


def _time_series_section(result: SeriesResult, info: raster.RasterInfo) -> report.Section:
    plan = result.plan
    all_dates = sorted(set(result.outputs) | {p.date for p in plan.pairs})
    first = all_dates[0]
    points = [(int(fx * (info.grid.width - 1)), int(fy * (info.grid.height - 1)))
              for fy, fx in SAMPLE_POINTS]
    fused = {d: (_scene_means(p), _point_values(p, points))
             for d, p in sorted(result.outputs.items())}
    observed = {p.date: (_scene_means(p.fine, p.mask), _point_values(p.fine, points, p.mask))
                for p in plan.pairs}
    charts = []
    for band, name in enumerate(info.band_names):
        series = {"fused: scene mean": [(_day(d, first), v[0][band]) for d, v in fused.items()],
                  "fine: scene mean (clear pixels)": [(_day(d, first), v[0][band])
                                                      for d, v in sorted(observed.items())]}
        for k, (x, y) in enumerate(points):
            series[f"fused at ({x}, {y})"] = [(_day(d, first), v[1][k, band])
                                              for d, v in fused.items()]
            series[f"fine at ({x}, {y})"] = [(_day(d, first), v[1][k, band])
                                             for d, v in sorted(observed.items())]
        charts.append(report.line_chart_svg(series, title=name, x_label=f"days since {first}",
                                            y_label="reflectance", width=760, height=340))
    note = ('<p class="note">Scene means over decimated images (at most 256 pixels a side); '
            "the fine images' means over their clear pixels only. Points: pixel (column, "
            "row); a fine observation under a cloud is left out.</p>")
    return "Time series", "".join(charts) + note


def _calendar_section(result: SeriesResult) -> report.Section:
    plan = result.plan
    fine = {p.date for p in plan.pairs}
    coarse = {e.date for e in plan.entries}
    used = {plan.pairs[i].date for i in plan.used_pairs()}
    skipped = dict(plan.skipped)
    rows = []
    for date in sorted(fine | coarse | set(skipped)):
        status = ("written now" if date in result.written else
                  "kept from an earlier run" if date in result.reused else
                  f"left out: {skipped[date]}" if date in skipped else "")
        pair = "pair, used" if date in used else "pair, not used" if date in fine else ""
        rows.append([date.isoformat(), pair, status])
    return ("Calendar of dates", report.table_html(["date", "fine/coarse pair", "fused image"],
                                                    rows))


def _quicklook_section(result: SeriesResult, info: raster.RasterInfo) -> report.Section:
    dates = sorted(result.outputs)
    if len(dates) > QUICKLOOKS:
        dates = [dates[int(i)] for i in np.linspace(0, len(dates) - 1, QUICKLOOKS)]
    rgb = list(report.rgb_band_indices(info.band_names))
    images = {d: report.read_decimated(result.outputs[d], QUICKLOOK_SIZE)[rgb] for d in dates}
    lo, hi = report.stretch_limits(np.concatenate([images[d] for d in dates], axis=2))
    figures = [report.image_html(report.png_bytes(report.rgba(images[d], lo, hi)), str(d),
                                 str(d), width=QUICKLOOK_SIZE) for d in dates]
    return ("Quick-looks", '<div class="figs">' + "".join(figures) + "</div>"
            + '<p class="note">The same 2–98 % stretch for every date.</p>')


def _sources_section(result: SeriesResult) -> report.Section:
    rows = [list(r[:1]) + list(r[3:]) for r in sources_rows(result)]
    return ("Sources per date", report.table_html(
        ["date", "pairs", "gap (days)", "share of pixels", "nodata share",
         "fine/coarse correlation", "temporal ratio", "trust"], rows))


def write_series_report(path: str, result: SeriesResult, info: raster.RasterInfo) -> str:
    sections = [_time_series_section(result, info), _calendar_section(result),
                _sources_section(result), _quicklook_section(result, info)]
    subtitle = (f"{len(result.outputs)} date(s) from {len(result.plan.pairs)} pair(s): "
                f"{len(result.written)} written, {len(result.reused)} kept")
    atomic.write_text(path, report.html_page("stfusion time series", sections, subtitle))
    return path
