"""Self-contained HTML reports (one file, images embedded as data URIs) with JSON/CSV sidecars.

QGIS-free. The generic helpers (``html_page``, ``table_html``, ``line_chart_svg``,
``density_svg``, ``png_bytes``, ``image_html``) are shared by every stfusion report (the
evaluation report here, the training report's loss curve); ``write_report`` writes the
evaluation report of ``core.metrics.evaluate_files``.

Pictures are PNGs made by GDAL's PNG driver from decimated reads (no matplotlib) and
charts are inline SVG, so the HTML renders in the Processing results viewer and any browser
without network access.
"""
import base64
import csv
import html
import json
import math
import os
import uuid
from typing import Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from osgeo import gdal

from . import atomic, raster

gdal.UseExceptions()

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
# viridis at 0, .25, .5, .75, 1
_VIRIDIS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98],
                     [253, 231, 37]], dtype=np.float64)

CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;
 background:#f6f7f9;color:#1d2330;font-size:14px;line-height:1.45}
header{background:#24466b;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px} header p{margin:4px 0 0;opacity:.85}
main{padding:8px 24px 32px;max-width:1280px}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;margin:16px 0;
 padding:12px 18px}
h2{font-size:16px;margin:4px 0 10px;color:#24466b}
table.st{border-collapse:collapse;margin:6px 0 10px;font-variant-numeric:tabular-nums}
table.st caption{text-align:left;font-weight:600;padding:4px 0;color:#444}
table.st th,table.st td{border:1px solid #d5d9e0;padding:4px 10px;text-align:right;
 white-space:nowrap}
table.st th{background:#eef1f5} table.st tbody th{text-align:left;font-weight:600}
table.kv td{text-align:left;white-space:normal} table.st td.best{font-weight:700;background:#e6f4ea}
.figs{display:flex;flex-wrap:wrap;gap:14px}
figure{margin:0;text-align:center} figure img{display:block;border:1px solid #ccd;
 image-rendering:pixelated;max-width:100%}
figcaption{font-size:12px;color:#444;margin-top:4px;max-width:360px}
.note{color:#555;font-size:12.5px} dl.conv dt{font-weight:600;margin-top:6px}
dl.conv dd{margin:0 0 0 16px;color:#333} code{background:#f0f2f5;padding:0 3px}
.bar{height:12px;width:256px;border:1px solid #ccd;margin:auto}
"""


class ReportPaths(NamedTuple):
    html: str
    json: str
    csv: str


Section = Tuple[str, str]  # (heading, inner HTML)


# -- generic HTML helpers ------------------------------------------------------------------
def esc(text) -> str:
    return html.escape(str(text), quote=True)


def html_page(title: str, sections: Iterable[Section], subtitle: str = "") -> str:
    """A complete HTML page: a header and one ``<section>`` per (heading, inner HTML)."""
    body = "\n".join(f"<section><h2>{esc(h)}</h2>\n{content}\n</section>"
                     for h, content in sections)
    sub = f"<p>{esc(subtitle)}</p>" if subtitle else ""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>"
            f"<header><h1>{esc(title)}</h1>{sub}</header>\n<main>\n{body}\n</main>"
            f"</body></html>\n")


def table_html(header: Optional[Sequence[str]], rows: Sequence[Sequence], caption: str = "",
               row_headers: bool = True, best: Optional[Sequence[Tuple[int, int]]] = None,
               css_class: str = "st") -> str:
    """An HTML table. Cells are text (escaped); with ``row_headers`` the first cell of each
    row is a ``<th>``; ``header`` None: no header row (e.g. a key/value table with
    ``css_class="st kv"``). ``best``: (row, column) cells to highlight."""
    best = set(best or ())
    out = [f'<table class="{esc(css_class)}">']
    if caption:
        out.append(f"<caption>{esc(caption)}</caption>")
    if header:
        out.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header)
                   + "</tr></thead>")
    out.append("<tbody>")
    for i, row in enumerate(rows):
        cells = []
        for j, cell in enumerate(row):
            if j == 0 and row_headers:
                cells.append(f"<th>{esc(cell)}</th>")
            else:
                cls = ' class="best"' if (i, j) in best else ""
                cells.append(f"<td{cls}>{esc(cell)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def image_html(png: bytes, alt: str, caption: str = "", width: Optional[int] = None) -> str:
    size = f' width="{int(width)}"' if width else ""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{data_uri(png)}" alt="{esc(alt)}"{size}>{cap}</figure>'


def _nice_ticks(lo: float, hi: float, count: int = 5) -> List[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, t = [], first
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _fmt_tick(v: float) -> str:
    return f"{v:.4g}"


def line_chart_svg(series: Mapping[str, Sequence], title: str = "", x_label: str = "epoch",
                   y_label: str = "", log_y: bool = False, width: int = 640,
                   height: int = 320) -> str:
    """An inline SVG line chart, e.g. a training loss curve.

    ``series`` maps a name to its values: a sequence of y (x = 1, 2, ...) or of (x, y)
    pairs. Non-finite values (and values <= 0 with ``log_y``) are skipped. Returns the
    ``<svg>`` element as a string (valid XML), with a legend when there is more than one
    series.
    """
    parsed = {}
    for name, values in series.items():
        points = []
        for i, v in enumerate(values):
            x, y = (v if isinstance(v, (tuple, list)) else (i + 1, v))
            try:
                x, y = float(x), float(y)
            except (TypeError, ValueError):
                continue
            if math.isfinite(x) and math.isfinite(y) and (y > 0 or not log_y):
                points.append((x, math.log10(y) if log_y else y))
        parsed[name] = points
    left, right, top, bottom = 64, 16, 28 if title else 12, 44
    pw, ph = width - left - right, height - top - bottom
    all_points = [p for pts in parsed.values() for p in pts]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>']
    if title:
        out.append(f'<text x="{width / 2:.1f}" y="17" text-anchor="middle" font-size="13" '
                   f'font-weight="bold">{esc(title)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" '
               f'stroke="#888"/>')
    if not all_points:
        out.append(f'<text x="{left + pw / 2:.1f}" y="{top + ph / 2:.1f}" '
                   f'text-anchor="middle" fill="#888">no data</text></svg>')
        return "\n".join(out)
    xs, ys = [p[0] for p in all_points], [p[1] for p in all_points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        pad = abs(y0) * 0.1 or 1.0
        y0, y1 = y0 - pad, y1 + pad
    pad = 0.05 * (y1 - y0)
    y0, y1 = y0 - pad, y1 + pad

    def sx(x):
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y):
        return top + ph - (y - y0) / (y1 - y0) * ph

    for t in _nice_ticks(x0, x1, 6):
        out.append(f'<line x1="{sx(t):.1f}" y1="{top + ph}" x2="{sx(t):.1f}" '
                   f'y2="{top + ph + 4}" stroke="#888"/><text x="{sx(t):.1f}" '
                   f'y="{top + ph + 16}" text-anchor="middle">{_fmt_tick(t)}</text>')
    if log_y:
        yticks = [float(e) for e in range(math.ceil(y0), math.floor(y1) + 1)] or \
            _nice_ticks(y0, y1, 4)
    else:
        yticks = _nice_ticks(y0, y1, 5)
    for t in yticks:
        label = _fmt_tick(10 ** t) if log_y else _fmt_tick(t)
        out.append(f'<line x1="{left}" y1="{sy(t):.1f}" x2="{left + pw}" y2="{sy(t):.1f}" '
                   f'stroke="#eee"/><text x="{left - 6}" y="{sy(t) + 4:.1f}" '
                   f'text-anchor="end">{label}</text>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 8}" text-anchor="middle">'
               f'{esc(x_label)}</text>')
    if y_label:
        out.append(f'<text transform="translate(14 {top + ph / 2:.1f}) rotate(-90)" '
                   f'text-anchor="middle">{esc(y_label + (" (log)" if log_y else ""))}</text>')
    for i, (name, points) in enumerate(parsed.items()):
        colour = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        if len(points) > 1:
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.8" '
                       f'points="{path}"><title>{esc(name)}</title></polyline>')
        for x, y in points if len(points) <= 60 else ():
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.2" fill="{colour}"/>')
    if len(parsed) > 1:
        for i, name in enumerate(parsed):
            y = top + 8 + 15 * i
            colour = PALETTE[i % len(PALETTE)]
            out.append(f'<line x1="{left + pw - 120}" y1="{y}" x2="{left + pw - 100}" y2="{y}" '
                       f'stroke="{colour}" stroke-width="2"/><text x="{left + pw - 95}" '
                       f'y="{y + 4}">{esc(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def density_svg(hist: np.ndarray, lo: float, hi: float, title: str = "",
                x_label: str = "reference", y_label: str = "predicted", size: int = 240
                ) -> str:
    """A 2-D histogram (``hist[i_x, j_y]`` over [lo, hi]^2) as an inline SVG density plot
    with log-scaled colours and the 1:1 line."""
    hist = np.asarray(hist)
    left, top, bottom, right = 46, 22 if title else 8, 36, 8
    w, h = size + left + right, size + top + bottom
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="10">',
           f'<rect x="{left}" y="{top}" width="{size}" height="{size}" fill="#fff" '
           f'stroke="#888"/>']
    if title:
        out.append(f'<text x="{left + size / 2:.1f}" y="15" text-anchor="middle" '
                   f'font-size="12" font-weight="bold">{esc(title)}</text>')
    peak = hist.max() if hist.size else 0
    if peak > 0:
        # one PNG pixel per bin (y up), scaled up without smoothing
        level = np.log1p(hist) / math.log1p(peak)
        colours = np.moveaxis(colormap(level), -1, 0)[:, :, ::-1].transpose(0, 2, 1)
        alpha = np.where(hist > 0, 255, 0).astype(np.uint8)[:, ::-1].T[None]
        png = png_bytes(np.concatenate([colours, alpha]))
        out.append(f'<image x="{left}" y="{top}" width="{size}" height="{size}" '
                   f'preserveAspectRatio="none" style="image-rendering:pixelated" '
                   f'href="{data_uri(png)}"/>')
    out.append(f'<line x1="{left}" y1="{top + size}" x2="{left + size}" y2="{top}" '
               f'stroke="#d62728" stroke-width="1" stroke-dasharray="4 3"/>')
    if hi > lo:
        for t in _nice_ticks(lo, hi, 4):
            p = (t - lo) / (hi - lo) * size
            out.append(f'<text x="{left + p:.1f}" y="{top + size + 13}" '
                       f'text-anchor="middle">{_fmt_tick(t)}</text>')
            out.append(f'<text x="{left - 4}" y="{top + size - p + 3:.1f}" '
                       f'text-anchor="end">{_fmt_tick(t)}</text>')
    out.append(f'<text x="{left + size / 2:.1f}" y="{h - 6}" text-anchor="middle">'
               f'{esc(x_label)}</text>')
    out.append(f'<text transform="translate(11 {top + size / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">{esc(y_label)}</text></svg>')
    return "\n".join(out)


# -- pictures ------------------------------------------------------------------------------
def colormap(values: np.ndarray) -> np.ndarray:
    """Viridis-like colours (uint8, ... x 3) of values in 0-1 (clipped; NaN -> 0)."""
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)), 0, 1) * 4
    i = np.minimum(v.astype(int), 3)
    t = (v - i)[..., None]
    return np.rint(_VIRIDIS[i] * (1 - t) + _VIRIDIS[i + 1] * t).astype(np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    """PNG of a uint8 ``(bands, rows, cols)`` image (1 grey, 3 RGB or 4 RGBA) via GDAL."""
    image = np.asarray(image, dtype=np.uint8)
    if image.ndim == 2:
        image = image[None]
    mem = gdal.GetDriverByName("MEM").Create("", image.shape[2], image.shape[1],
                                             image.shape[0], gdal.GDT_Byte)
    for k in range(image.shape[0]):
        mem.GetRasterBand(k + 1).WriteArray(image[k])
    if image.shape[0] == 4:
        mem.GetRasterBand(4).SetColorInterpretation(gdal.GCI_AlphaBand)
    name = f"/vsimem/stfusion_{uuid.uuid4().hex}.png"
    try:
        gdal.GetDriverByName("PNG").CreateCopy(name, mem)
        handle = gdal.VSIFOpenL(name, "rb")
        try:
            gdal.VSIFSeekL(handle, 0, 2)
            length = gdal.VSIFTellL(handle)
            gdal.VSIFSeekL(handle, 0, 0)
            return bytes(gdal.VSIFReadL(1, length, handle))
        finally:
            gdal.VSIFCloseL(handle)
    finally:
        gdal.Unlink(name)
        if gdal.VSIStatL(name + ".aux.xml") is not None:
            gdal.Unlink(name + ".aux.xml")


def read_decimated(path: str, max_size: int = 512,
                   bands: Optional[Sequence[int]] = None) -> np.ndarray:
    """Reflectance ``(bands, rows, cols)`` with NaN nodata, nearest-neighbour decimated so
    that the longer side is at most ``max_size`` (bounded memory for any raster size)."""
    ds = raster.open_dataset(path)
    factor = max(1.0, max(ds.RasterXSize, ds.RasterYSize) / max_size)
    bw = max(1, int(round(ds.RasterXSize / factor)))
    bh = max(1, int(round(ds.RasterYSize / factor)))
    bands = list(bands) if bands else list(range(1, ds.RasterCount + 1))
    out = np.full((len(bands), bh, bw), np.nan, dtype=np.float32)
    for i, number in enumerate(bands):
        band = ds.GetRasterBand(number)
        raw = band.ReadAsArray(buf_xsize=bw, buf_ysize=bh,
                               resample_alg=gdal.GRIORA_NearestNeighbour)
        invalid = ~np.isfinite(raw) if raw.dtype.kind == "f" else np.zeros(raw.shape, bool)
        nodata = band.GetNoDataValue()
        if nodata is not None and np.isfinite(nodata):
            invalid |= raw == nodata
        values = raw.astype(np.float32) * np.float32(band.GetScale() or 1.0) \
            + np.float32(band.GetOffset() or 0.0)
        values[invalid] = np.nan
        out[i] = values
    return out


def rgb_band_indices(band_names: Sequence[str]) -> Tuple[int, int, int]:
    """0-based (red, green, blue) indices: natural colour when bands are named, else
    NIR/red/green false colour, else the first three bands reversed."""
    names = [str(n).lower() for n in band_names]
    for wanted in (("red", "green", "blue"), ("nir", "red", "green")):
        if all(n in names for n in wanted):
            return tuple(names.index(n) for n in wanted)
    count = len(names)
    return (min(2, count - 1), min(1, count - 1), 0)


def stretch_limits(image: np.ndarray, low: float = 2, high: float = 98):
    lo, hi = [], []
    for band in image:
        values = band[np.isfinite(band)]
        a, b = (np.percentile(values, [low, high]) if values.size else (0.0, 1.0))
        lo.append(a)
        hi.append(b if b > a else a + 1e-6)
    return np.array(lo), np.array(hi)


def rgba(image: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """uint8 RGBA of a 3-band float image stretched linearly to [lo, hi]; NaN transparent."""
    valid = np.isfinite(image).all(axis=0)
    scaled = (image - lo[:, None, None]) / (hi - lo)[:, None, None]
    rgb = np.rint(np.clip(np.nan_to_num(scaled), 0, 1) * 255).astype(np.uint8)
    return np.concatenate([rgb, (valid * 255).astype(np.uint8)[None]])


def error_rgba(error: np.ndarray, vmax: float) -> np.ndarray:
    valid = np.isfinite(error)
    colours = colormap(error / vmax if vmax > 0 else np.zeros_like(error))
    return np.concatenate([np.moveaxis(colours, -1, 0),
                           (valid * 255).astype(np.uint8)[None]])


def colour_bar_html(vmax: float, label: str) -> str:
    stops = ",".join(f"rgb({r},{g},{b})" for r, g, b in _VIRIDIS.astype(int))
    return (f'<figure><div class="bar" style="background:linear-gradient(to right,{stops})">'
            f'</div><figcaption>{esc(label)}: 0 &#8594; {vmax:.4g} (and above)</figcaption>'
            f'</figure>')


# -- the evaluation report -----------------------------------------------------------------
PERCENT = ("rMAE", "MAEC_coarse", "MAEC_compare")
LOWER_BETTER = ("RMSE", "MAE", "rMAE", "ERGAS", "SAM")
HIGHER_BETTER = ("R2", "SSIM", "CC", "PSNR")
METRIC_LABELS = {"R2": "R²", "SAM": "SAM (°)", "PSNR": "PSNR (dB)",
                 "MAEC_coarse": "MAEC vs coarse", "MAEC_compare": "MAEC vs compare",
                 "rMAE": "rMAE", "Edge": "Edge"}


def fmt(value, metric: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if metric in PERCENT or metric.startswith("MAEC"):
        return f"{100 * value:.2f} %"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.4g}"


def _best_cells(values: List[List[Optional[float]]], metrics: Sequence[str]):
    best = []
    for j, metric in enumerate(metrics):
        column = [(i, row[j]) for i, row in enumerate(values)
                  if row[j] is not None and not math.isnan(row[j])]
        if len(column) < 2:
            continue
        if metric in LOWER_BETTER:
            key = min(column, key=lambda c: c[1])
        elif metric in HIGHER_BETTER:
            key = max(column, key=lambda c: c[1])
        elif metric == "Edge":
            key = min(column, key=lambda c: abs(c[1]))
        else:
            continue
        best.append((key[0], j + 1))
    return best


def _label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def _tables(evaluation) -> List[Section]:
    result = evaluation.result
    metric_rows = [m for m in evaluation.metric_names if m in result.mean]
    header = ["metric"] + list(evaluation.band_names) + ["mean / all bands"]
    rows = []
    for metric in metric_rows:
        per_band = result.per_band.get(metric)
        cells = [fmt(v, metric) for v in per_band] if per_band else ["—"] * len(
            evaluation.band_names)
        rows.append([_label(metric)] + cells + [fmt(result.mean[metric], metric)])
    sections = [("Accuracy of the prediction per band (cf. the paper's Table 2)",
                 table_html(header, rows, caption=result.label)
                 + '<p class="note">Mean column: mean over bands, except ERGAS (quadratic '
                 "mean of the per-band terms, the ERGAS of the image) and SAM (a spectral "
                 "metric over all bands). rMAE and MAEC in percent.</p>")]
    if len(evaluation.methods) > 1:
        metrics = [m for m in evaluation.metric_names]
        values = [[m.mean.get(k) for k in metrics] for m in evaluation.methods]
        rows = [[m.label] + [fmt(v, k) for v, k in zip(vals, metrics)]
                for m, vals in zip(evaluation.methods, values)]
        notes = []
        if evaluation.coarse:
            notes.append("“MAEC vs coarse” = (MAE(method) − MAE(coarse)) / MAE(coarse): the "
                         "relative change of the MAE against the un-fused coarse image of the "
                         "same date; negative = smaller error than the coarse image (better).")
        if evaluation.compare:
            notes.append("“MAEC vs compare” = (MAE(prediction) − MAE(compare)) / "
                         "MAE(compare): the relative change of the MAE against the comparison "
                         "prediction; negative = smaller error than it (better).")
        notes.append("Highlighted: the best value of each column (Edge: closest to 0).")
        sections.append((
            "Comparison of methods (cf. the paper's Table 3)",
            table_html(["method"] + [_label(k) for k in metrics], rows,
                       caption="means over bands", best=_best_cells(values, metrics))
            + "".join(f'<p class="note">{esc(n)}</p>' for n in notes)))
    return sections


def _quicklook_section(evaluation, max_size: int) -> Section:
    rgb = rgb_band_indices(evaluation.band_names)
    numbers = [k + 1 for k in rgb]
    reference = read_decimated(evaluation.reference, max_size)
    lo, hi = stretch_limits(reference[list(rgb)])
    figures = []
    width = reference.shape[2]
    shown = max(width, min(360, 3 * width))  # small images are enlarged (pixelated)
    band_text = "/".join(evaluation.band_names[k] for k in rgb)

    def add(png, name, caption):
        figures.append(image_html(png, name, caption, width=shown))

    add(png_bytes(rgba(reference[list(rgb)], lo, hi)), "reference",
        f"reference ({band_text}, 2–98 % stretch of the reference)")
    images = {role: read_decimated(path, max_size) for role, path in (
        ("coarse", evaluation.coarse), ("prediction", evaluation.prediction),
        ("compare", evaluation.compare)) if path}
    figures += stretched_figures(
        [(images[role], f"{role}: {os.path.basename(path)}") for role, path in (
            ("coarse", evaluation.coarse), ("prediction", evaluation.prediction),
            ("compare", evaluation.compare)) if path], rgb, lo, hi, shown)
    errors = {}
    for role in ("prediction", "compare"):
        if role in images:
            with np.errstate(invalid="ignore"):
                errors[role] = np.sqrt(np.mean((images[role] - reference) ** 2, axis=0))
    finite = errors["prediction"][np.isfinite(errors["prediction"])]
    vmax = float(np.percentile(finite, 99)) if finite.size else 1.0
    for role, error in errors.items():
        add(png_bytes(error_rgba(error, vmax)), f"{role} error",
            f"error of the {role}: per-pixel RMSE over bands, sqrt(mean_k (F−R)²)")
    figures.append(colour_bar_html(vmax, "error colour scale (reflectance)"))
    note = (f'<p class="note">Quick-looks decimated (nearest neighbour) to at most '
            f'{reference.shape[2]}x{reference.shape[1]} pixels; bands {numbers} as RGB; the '
            f'same stretch for every image.</p>')
    return ("Quick-looks (cf. the paper's Fig. 3)",
            '<div class="figs">' + "".join(figures) + "</div>" + note)


def stretched_figures(images: Sequence[Tuple[np.ndarray, str]], rgb: Sequence[int],
                      lo: np.ndarray, hi: np.ndarray, width: int) -> List[str]:
    """Figures of ``(image, caption)`` as RGB (0-based band indices ``rgb``), all with the
    same linear stretch [lo, hi]."""
    return [image_html(png_bytes(rgba(image[list(rgb)], lo, hi)), caption, caption,
                       width=width) for image, caption in images]


def _scatter_section(evaluation) -> Optional[Section]:
    if not evaluation.histograms:
        return None
    parts = []
    for method in evaluation.methods:
        role = method.role
        hist = evaluation.histograms.get(role)
        if hist is None or role == "coarse":
            continue
        parts.append(f'<p><b>{esc(method.label)}</b></p>')
        svgs = [density_svg(hist[k], *evaluation.histogram_range[k], title=name,
                            x_label="reference", y_label=role)
                for k, name in enumerate(evaluation.band_names)]
        parts.append(f'<div class="figs">{"".join(svgs)}</div>')
    return ("Predicted vs reference (density of all counted pixels)",
            "".join(parts) + '<p class="note">2-D histograms over all counted pixels, log '
            "colour scale; dashed: the 1:1 line; values beyond the axis range are drawn on "
            "its edge.</p>")


def _info_section(evaluation) -> Section:
    rows = [["prediction", evaluation.prediction], ["reference", evaluation.reference]]
    if evaluation.coarse:
        rows.append(["coarse (un-fused baseline)", evaluation.coarse])
    if evaluation.compare:
        rows.append(["compare", evaluation.compare])
    share = evaluation.counted_pixels / max(1, evaluation.total_pixels)
    rows += [["counted pixels", f"{evaluation.counted_pixels} of {evaluation.total_pixels} "
              f"({100 * share:.1f} %, valid in every input)"],
             ["ERGAS h/l", evaluation.ratio_note],
             ["time", f"{evaluation.seconds:.1f} s"]]
    conventions = "".join(f"<dt>{esc(_label(k))}</dt><dd>{esc(v)}</dd>"
                          for k, v in evaluation.conventions.items())
    return ("Inputs and conventions",
            table_html(None, rows, css_class="st kv") + f'<dl class="conv">{conventions}</dl>')


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A CSV cell that a spreadsheet shows as text: text starting like a formula (= + - @)
    gets a leading apostrophe; numbers (also negative ones, as text) stay as they are."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value


def _csv_rows(rows) -> str:
    import io
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([[csv_cell(c) for c in row]
                                                       for row in rows])
    return buffer.getvalue()


def csv_text(evaluation) -> str:
    names = evaluation.metric_names
    rows = [["method", "band"] + names]
    for row in evaluation.rows():
        rows.append([row["method"], row["band"]] + [
            "" if row[n] is None or (isinstance(row[n], float) and math.isnan(row[n]))
            else repr(float(row[n])) for n in names])
    return _csv_rows(rows)


def json_text(data, indent: int = 1) -> str:
    """Strict JSON (RFC 8259): non-finite numbers (an infinite PSNR, a NaN metric) become
    null, other objects their text; never the invalid ``NaN``/``Infinity`` tokens."""
    return json.dumps(_json_safe(data), indent=indent, allow_nan=False)


def _json_safe(value):
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def html_path(path: str) -> str:
    """A report path ending in .html or .htm (.html is added when it has neither)."""
    return path if path.lower().endswith((".html", ".htm")) else path + ".html"


def sidecar_paths(html_path: str) -> ReportPaths:
    """The report and its sidecars: ``name.html`` -> ``name.html.json``, ``name.html.csv``
    (derived from the full name, so they never replace an unrelated ``name.json``)."""
    html = os.path.abspath(html_path)
    return ReportPaths(html, html + ".json", html + ".csv")


def write_report(evaluation, html_path: str, quicklooks: bool = True,
                 title: str = "stfusion accuracy report",
                 extra_sections: Sequence[Section] = (), max_size: int = 480,
                 lead_sections: Sequence[Section] = ()) -> ReportPaths:
    """Write the HTML report of an ``Evaluation`` and its JSON and CSV sidecars (same base
    name). ``quicklooks``: add the decimated reference/coarse/fused/error images (they read
    the rasters again, at most ``max_size`` pixels a side). ``extra_sections``: more
    (heading, HTML) sections, e.g. a fusion run's parameters; ``lead_sections``: sections
    before the tables (e.g. a warning). Returns the three paths."""
    paths = sidecar_paths(html_path)
    sections: List[Section] = list(lead_sections) + list(_tables(evaluation))
    if quicklooks:
        sections.append(_quicklook_section(evaluation, max_size))
    scatter = _scatter_section(evaluation)
    if scatter:
        sections.append(scatter)
    sections.extend(extra_sections)
    sections.append(_info_section(evaluation))
    sections.append(("Files", f'<p class="note">JSON: {esc(os.path.basename(paths.json))}, '
                              f'CSV: {esc(os.path.basename(paths.csv))} (beside this '
                              "file).</p>"))
    mean = evaluation.mean
    subtitle = (f"{os.path.basename(evaluation.prediction)} vs "
                f"{os.path.basename(evaluation.reference)} — RMSE {fmt(mean['RMSE'])}, "
                f"SSIM {fmt(mean['SSIM'])}, ERGAS {fmt(mean['ERGAS'])}, "
                f"SAM {fmt(mean['SAM'])}°")
    atomic.write_text(paths.json, json_text(evaluation.to_dict(), indent=2))
    atomic.write_text(paths.csv, csv_text(evaluation))
    atomic.write_text(paths.html, html_page(title, sections, subtitle))
    return paths


# -- the fusion and training reports (shared look, used by stfusion:fuse and stfusion:train) --
def _value_text(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return fmt(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_value_text(v) for v in value) or "—"
    return "—" if value is None else str(value)


def flat_items(mapping: Mapping, prefix: str = "") -> List[Tuple[str, str]]:
    """(key, text) rows of a nested mapping: nested keys joined by ' › ', lists as text."""
    rows = []
    for key, value in mapping.items():
        name = f"{prefix}{str(key).replace('_', ' ')}"
        if isinstance(value, Mapping):
            rows += flat_items(value, name + " › ")
        else:
            rows.append((name, _value_text(value)))
    return rows


def mapping_table(mapping: Mapping, caption: str = "") -> str:
    """A key/value table of a (flat or nested) mapping, nested keys as 'a › b' rows."""
    return table_html(None, [list(row) for row in flat_items(mapping)], caption,
                      css_class="st kv")


def history_series(history: Mapping) -> dict:
    """Loss-curve series (name -> values per epoch) from a training history such as
    ``training.train``'s: its list-valued entries other than an "epoch" column."""
    return {str(k): list(v) for k, v in history.items()
            if isinstance(v, (list, tuple, np.ndarray)) and str(k).lower() != "epoch"}


def write_training_report(html_path: str, metadata: Mapping, history: Mapping,
                          title: str = "stfusion training report") -> ReportPaths:
    """Training report: the loss curves (``line_chart_svg``) and the settings/model metadata,
    with a JSON sidecar {metadata, history} and a CSV of the curves (same base name)."""
    paths = sidecar_paths(html_path)
    series = history_series(history)
    positive = all(y > 0 for values in series.values() for y in values
                   if isinstance(y, (int, float)) and math.isfinite(y))
    chart = line_chart_svg(series, title="loss", x_label="epoch", y_label="loss",
                           log_y=positive and bool(series))
    settings = {k: v for k, v in metadata.items() if k != "history"}  # the curves show it
    sections = [("Loss curves", chart), ("Settings and model", mapping_table(settings))]
    atomic.write_text(paths.json, json_text({"metadata": metadata, "history": history}))
    rows = [["series", "epoch", "value"]]
    for name, values in series.items():
        rows.extend([name, epoch, value] for epoch, value in enumerate(values, start=1))
    atomic.write_text(paths.csv, _csv_rows(rows))
    atomic.write_text(paths.html, html_page(title, sections))
    return paths


FUSION_INPUT_LABELS = {"FINE_T1": "fine t1", "COARSE_T1": "coarse t1", "COARSE_T2": "coarse t2",
                       "FINE_T3": "fine t3", "COARSE_T3": "coarse t3",
                       "REFERENCE": "reference t2"}


def _fusion_quicklook_section(run: Mapping, max_size: int) -> Section:
    """The inputs and the fused image side by side, one stretch (that of the fine t1)."""
    inputs = dict(run["inputs"])
    fine = read_decimated(inputs["FINE_T1"], max_size)
    rgb = rgb_band_indices(run.get("band_names") or [str(k) for k in range(len(fine))])
    lo, hi = stretch_limits(fine[list(rgb)])
    images = [(fine, f"fine t1: {os.path.basename(inputs['FINE_T1'])}")]
    images += [(read_decimated(path, max_size),
                f"{FUSION_INPUT_LABELS.get(name, name)}: {os.path.basename(path)}")
               for name, path in inputs.items() if name != "FINE_T1" and path]
    images.append((read_decimated(run["output"], max_size),
                   f"fused: {os.path.basename(run['output'])}"))
    shown = max(fine.shape[2], min(360, 3 * fine.shape[2]))
    figures = stretched_figures(images, rgb, lo, hi, shown)
    return ("Quick-looks", '<div class="figs">' + "".join(figures) + "</div>"
            + f'<p class="note">Decimated (nearest neighbour) to at most {fine.shape[2]}x'
              f"{fine.shape[1]} pixels; bands {[k + 1 for k in rgb]} as RGB; every image with "
              "the 2–98 % stretch of the fine image at t1.</p>")


def _trained_on_section(scene: str) -> Section:
    return ("This scene was in the model's training data", (
        f'<p><b>The model was trained on this scene</b> ({esc(scene)}): accuracy measured '
        "here is optimistic, not what to expect on a scene the model has never seen. The "
        "README's accuracy section gives leave-one-site-out figures.</p>"))


def write_fusion_report(html_path: str, run: Mapping, evaluation=None,
                        title: str = "stfusion fusion report", max_size: int = 480,
                        subtitle: str = "") -> ReportPaths:
    """Fusion report: the inputs and the fused image as quick-looks, the run and the model
    as tables and, with an ``Evaluation`` against a reference, the full accuracy report of
    ``write_report``. ``run``: inputs (parameter -> path), output, band_names, model (the
    fusion summary), seconds, and trained_on_this_scene (a description, or None)."""
    scene = run.get("trained_on_this_scene")
    lead = [_trained_on_section(scene)] if scene else []
    details = {k: v for k, v in run.items()
               if k not in ("inputs", "model", "band_names", "trained_on_this_scene")}
    inputs = {name: path for name, path in (run.get("inputs") or {}).items() if path}
    sections = [("Fusion run", mapping_table(details))]
    if inputs:
        sections.append(("Inputs", table_html(["input", "file"], [
            [FUSION_INPUT_LABELS.get(name, name), path] for name, path in inputs.items()],
            css_class="st kv")))
    if run.get("model"):
        sections.append(("Model", mapping_table(run["model"])))
    if evaluation is not None:
        return write_report(evaluation, html_path, title=title, lead_sections=lead,
                            extra_sections=sections)
    paths = sidecar_paths(html_path)
    atomic.write_text(paths.json, json_text({"run": run}))
    atomic.write_text(paths.csv, _csv_rows([["key", "value"]] + [list(row) for row in
                                                                 flat_items(run)]))
    accuracy = ("Accuracy", '<p class="note">No reference image given: give the real fine '
                            "image of the predicted date to score the result.</p>")
    pictures = [_fusion_quicklook_section(run, max_size)] \
        if "FINE_T1" in inputs and run.get("output") else []
    atomic.write_text(paths.html, html_page(title, lead + pictures + sections + [accuracy],
                                            subtitle))
    return paths
