"""Accuracy of a fused image against a reference fine image: the paper's and the field's metrics.

QGIS-free. ``evaluate_files`` streams rasters of any size block by block (bounded memory)
and returns an ``Evaluation``; the array-level functions (``rmse``, ``ssim``, ...) compute
the same quantities on whole in-memory arrays, for tests and benchmarks.

Conventions (one for all, documented in ``CONVENTIONS``):

- Values are reflectance (GDAL scale/offset applied by ``core.raster``), nominally 0-1.
- A pixel counts when every band of every input (prediction, reference, and the coarse
  baseline / comparison prediction when given) is valid, so every method is scored on the
  same pixels. Metrics are computed per band; the "mean" is the mean over bands, except
  ERGAS and SAM which are multi-band by definition.
- RMSE = sqrt(mean((F-R)^2)); MAE = mean(|F-R|); R2 = 1 - SSE/SST (SST about the reference
  mean); CC = Pearson correlation of F and R.
- rMAE = mean(|F-R| / R) over the pixels with R >= ``RMAE_MIN_REFERENCE`` (0.01): dividing
  by near-zero reflectance (water in the SWIR bands) would explode.
- MAEC = (MAE_method - MAE_baseline) / MAE_baseline, the paper's eq. 9 keeping its sign
  (negative = smaller error than the baseline, i.e. better), with the baseline the coarse
  image of the same date (the un-fused input) or the comparison prediction.
- Edge = mean(E(F) - E(R)) with the Roberts-cross magnitude
  E(i,j) = |X(i,j) - X(i+1,j+1)| + |X(i,j+1) - X(i+1,j)|, over pixels whose 2x2 block is
  valid; negative = smoother than the reference.
- SSIM: Gaussian 11x11 window (sigma 1.5), K1 = 0.01, K2 = 0.03, population covariance,
  data_range = the reference band's range (max - min over the counted pixels); the mean of
  the SSIM map over the pixels whose whole 11x11 window is valid. On a fully valid image
  this equals scikit-image's ``structural_similarity(pred, ref, gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=ref.max() - ref.min())``.
- ERGAS = 100 * (h/l) * sqrt(mean_k (RMSE_k / mu_k)^2), h/l = fine / coarse pixel size
  (by the one scale-ratio rule, core/scale_ratio.py), mu_k the reference band mean. Per band: 100 * (h/l) * RMSE_k / mu_k.
- SAM = mean over pixels of the angle (degrees) between the predicted and the reference
  spectra (pixels where either spectrum is all zero are skipped).
- PSNR = 10 * log10(L^2 / MSE) with L the reference band's range (infinite if MSE = 0).
"""
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from . import raster, scale_ratio
from .tiling import DEFAULT_TILE, check_canceled, iter_tiles, tile_count

METRICS = ("RMSE", "MAE", "R2", "rMAE", "Edge", "SSIM", "ERGAS", "SAM", "CC", "PSNR")
MULTIBAND = ("SAM",)  # no per-band value
RMAE_MIN_REFERENCE = 0.01
DEFAULT_RATIO = 30.0 / 500.0
SSIM_SIGMA = 1.5
SSIM_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)  # 5: an 11x11 window, as Wang et al. 2004
SSIM_K1, SSIM_K2 = 0.01, 0.03
HIST_BINS = 50

CONVENTIONS = {
    "pixels": "Pixels valid in every band of every input (prediction, reference, coarse "
              "baseline and comparison when given); all methods are scored on the same pixels.",
    "RMSE": "sqrt(mean((F-R)^2)) per band, reflectance; mean over bands.",
    "MAE": "mean(|F-R|) per band; mean over bands.",
    "R2": "1 - SSE/SST per band (SST about the reference mean); mean over bands.",
    "rMAE": f"mean(|F-R|/R) over pixels with R >= {RMAE_MIN_REFERENCE} (relative MAE); "
            "mean over bands.",
    "MAEC": "(MAE_method - MAE_baseline) / MAE_baseline: the paper's eq. 9 keeping its sign "
            "(negative = smaller error than the baseline, i.e. better); baseline = the coarse "
            "image of the same date (un-fused input) or the comparison prediction.",
    "Edge": "mean(E(F) - E(R)), E = Roberts-cross |X(i,j)-X(i+1,j+1)| + |X(i,j+1)-X(i+1,j)|; "
            "negative = smoother than the reference.",
    "SSIM": "Gaussian 11x11 window, sigma 1.5, K1 0.01, K2 0.03, population covariance, "
            "data_range = reference band range; mean of the SSIM map over pixels whose whole "
            "window is valid (= scikit-image structural_similarity with these settings).",
    "ERGAS": "100 * (h/l) * sqrt(mean_k (RMSE_k/mu_k)^2), h/l = fine/coarse pixel size, "
             "mu_k = reference band mean; per band 100*(h/l)*RMSE_k/mu_k.",
    "SAM": "mean over pixels of the angle between predicted and reference spectra, degrees.",
    "CC": "Pearson correlation per band; mean over bands.",
    "PSNR": "10*log10(L^2/MSE) per band, L = reference band range (dB); mean over bands.",
}


# --------------------------------------------------------------------------------------
# array-level metrics: (bands, rows, cols) or (rows, cols) arrays, NaN = nodata
# --------------------------------------------------------------------------------------
def _bands(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a[None] if a.ndim == 2 else a


def _masked(pred, ref):
    pred, ref = _bands(pred), _bands(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"shapes differ: {pred.shape} vs {ref.shape}")
    mask = np.isfinite(pred).all(axis=0) & np.isfinite(ref).all(axis=0)
    return pred, ref, mask


def _per_band(pred, ref, function) -> np.ndarray:
    pred, ref, mask = _masked(pred, ref)
    return np.array([function(p[mask], r[mask]) for p, r in zip(pred, ref)])


def rmse(pred, ref) -> np.ndarray:
    """Per-band RMSE over pixels valid in both."""
    return _per_band(pred, ref, lambda p, r: math.sqrt(np.mean((p - r) ** 2)))


def mae(pred, ref) -> np.ndarray:
    return _per_band(pred, ref, lambda p, r: np.mean(np.abs(p - r)))


def r2(pred, ref) -> np.ndarray:
    return _per_band(pred, ref, lambda p, r: 1.0 - np.sum((p - r) ** 2)
                     / np.sum((r - r.mean()) ** 2))


def cc(pred, ref) -> np.ndarray:
    return _per_band(pred, ref, lambda p, r: np.corrcoef(p, r)[0, 1])


def rmae(pred, ref, min_reference: float = RMAE_MIN_REFERENCE) -> np.ndarray:
    def one(p, r):
        keep = r >= min_reference
        return np.mean(np.abs(p[keep] - r[keep]) / r[keep]) if keep.any() else np.nan
    return _per_band(pred, ref, one)


def psnr(pred, ref) -> np.ndarray:
    def one(p, r):
        mse = np.mean((p - r) ** 2)
        peak = r.max() - r.min()
        return math.inf if mse == 0 else 10.0 * math.log10(peak ** 2 / mse)
    return _per_band(pred, ref, one)


def ergas(pred, ref, ratio: float = DEFAULT_RATIO) -> float:
    pred, ref, mask = _masked(pred, ref)
    terms = [np.sqrt(np.mean((p[mask] - r[mask]) ** 2)) / np.mean(r[mask])
             for p, r in zip(pred, ref)]
    return float(100.0 * ratio * np.sqrt(np.mean(np.square(terms))))


def maec(mae_method, mae_baseline):
    """(MAE_method - MAE_baseline) / MAE_baseline (elementwise), signed: negative = the
    method's error is smaller than the baseline's (the paper's eq. 9 is its magnitude)."""
    mae_baseline = np.asarray(mae_baseline, dtype=np.float64)
    return (np.asarray(mae_method, dtype=np.float64) - mae_baseline) / mae_baseline


def roberts(image) -> np.ndarray:
    """Roberts-cross magnitude of (bands, rows, cols) -> (bands, rows-1, cols-1)."""
    x = _bands(image)
    return (np.abs(x[:, :-1, :-1] - x[:, 1:, 1:]) + np.abs(x[:, :-1, 1:] - x[:, 1:, :-1]))


def edge(pred, ref) -> np.ndarray:
    """Per-band mean(E(pred) - E(ref)) over pixels whose 2x2 block is valid in both."""
    pred, ref, mask = _masked(pred, ref)
    difference = roberts(np.where(mask, pred, 0)) - roberts(np.where(mask, ref, 0))
    ok = mask[:-1, :-1] & mask[1:, 1:] & mask[:-1, 1:] & mask[1:, :-1]
    return np.array([d[ok].mean() for d in difference])


def spectral_angle(pred, ref) -> np.ndarray:
    """Per-pixel angle (degrees) between spectra along axis 0, numerically stable
    (2 atan2(|u - v|, |u + v|) of the unit vectors); NaN where invalid or all-zero."""
    pred, ref = _bands(pred), _bands(ref)
    norm_p = np.sqrt(np.sum(pred ** 2, axis=0))
    norm_r = np.sqrt(np.sum(ref ** 2, axis=0))
    ok = np.isfinite(norm_p) & np.isfinite(norm_r) & (norm_p > 0) & (norm_r > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        u, v = pred / norm_p, ref / norm_r
        angle = 2.0 * np.arctan2(np.sqrt(np.sum((u - v) ** 2, axis=0)),
                                 np.sqrt(np.sum((u + v) ** 2, axis=0)))
    return np.where(ok, np.degrees(angle), np.nan)


def sam(pred, ref) -> float:
    angle = spectral_angle(pred, ref)
    return float(np.nanmean(angle))


def _gaussian_window() -> np.ndarray:
    x = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return w / w.sum()


_WINDOW = _gaussian_window()


def _filter_valid(a: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Separable correlation of a 2-D array, 'valid' part only (shrinks by len-1)."""
    n = len(weights)
    rows = a.shape[0] - n + 1
    tmp = weights[0] * a[:rows]
    for k in range(1, n):
        tmp = tmp + weights[k] * a[k:k + rows]
    cols = a.shape[1] - n + 1
    out = weights[0] * tmp[:, :cols]
    for k in range(1, n):
        out = out + weights[k] * tmp[:, k:k + cols]
    return out


def window_valid(valid: np.ndarray) -> np.ndarray:
    """Output pixels (shrunk by 2*radius) whose whole SSIM window is ``valid``."""
    return _filter_valid((~valid).astype(np.float64), np.ones(2 * SSIM_RADIUS + 1)) < 0.5


def ssim_map_valid(pred: np.ndarray, ref: np.ndarray, valid: np.ndarray, data_range: float,
                   ok: Optional[np.ndarray] = None):
    """SSIM map of one band over the window-interior of a 2-D array (shrinks by 2*radius).

    Returns (ssim, ok): ``ok`` marks output pixels whose whole window is ``valid``.
    """
    x = np.where(valid, pred, 0.0).astype(np.float64)
    y = np.where(valid, ref, 0.0).astype(np.float64)
    w = _WINDOW
    ux, uy = _filter_valid(x, w), _filter_valid(y, w)
    vx = _filter_valid(x * x, w) - ux * ux
    vy = _filter_valid(y * y, w) - uy * uy
    vxy = _filter_valid(x * y, w) - ux * uy
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    return s, (window_valid(valid) if ok is None else ok)


def ssim(pred, ref, data_range: Optional[Sequence[float]] = None) -> np.ndarray:
    """Per-band mean SSIM (see CONVENTIONS) of whole arrays."""
    pred, ref, mask = _masked(pred, ref)
    r = SSIM_RADIUS
    out = []
    for k, (p, q) in enumerate(zip(pred, ref)):
        rng = (q[mask].max() - q[mask].min()) if data_range is None else data_range[k]
        p = np.pad(p, r, constant_values=np.nan)
        q = np.pad(q, r, constant_values=np.nan)
        valid = np.pad(mask, r, constant_values=False)
        s, ok = ssim_map_valid(p, q, valid, rng)
        out.append(s[ok].mean() if ok.any() else np.nan)
    return np.array(out)


# --------------------------------------------------------------------------------------
# block-wise accumulation
# --------------------------------------------------------------------------------------
class _Stats:
    """Running per-band sums for one method against the reference (float64)."""

    def __init__(self, bands: int):
        z = lambda: np.zeros(bands)  # noqa: E731
        self.n = 0
        self.mean_f, self.mean_r, self.m2_f, self.m2_r, self.c_fr = z(), z(), z(), z(), z()
        self.sse, self.sae = z(), z()
        self.rmae_sum, self.rmae_n = z(), z()
        self.edge_sum, self.edge_n = z(), 0
        self.sam_sum, self.sam_n = 0.0, 0
        self.ref_min, self.ref_max = np.full(bands, np.inf), np.full(bands, -np.inf)
        self.ssim_sum, self.ssim_n = z(), 0
        self.hist = np.zeros((bands, HIST_BINS, HIST_BINS), dtype=np.int64)

    def add_pixels(self, f: np.ndarray, r: np.ndarray) -> None:
        """f, r: (bands, n) float64 values of counted pixels."""
        nb = f.shape[1]
        if nb == 0:
            return
        d = f - r
        self.sse += np.sum(d * d, axis=1)
        self.sae += np.sum(np.abs(d), axis=1)
        keep = r >= RMAE_MIN_REFERENCE
        with np.errstate(invalid="ignore", divide="ignore"):
            self.rmae_sum += np.sum(np.where(keep, np.abs(d) / r, 0.0), axis=1)
        self.rmae_n += keep.sum(axis=1)
        self.ref_min = np.minimum(self.ref_min, r.min(axis=1))
        self.ref_max = np.maximum(self.ref_max, r.max(axis=1))
        angle = spectral_angle(f[:, None, :], r[:, None, :])[0]
        self.sam_sum += float(np.nansum(angle))
        self.sam_n += int(np.isfinite(angle).sum())
        # Chan et al. merge of means, second moments and co-moment
        mf, mr = f.mean(axis=1), r.mean(axis=1)
        df, dr = f - mf[:, None], r - mr[:, None]
        m2f, m2r, cfr = np.sum(df * df, axis=1), np.sum(dr * dr, axis=1), np.sum(df * dr, axis=1)
        n = self.n + nb
        delta_f, delta_r = mf - self.mean_f, mr - self.mean_r
        w = self.n * nb / n
        self.m2_f += m2f + delta_f * delta_f * w
        self.m2_r += m2r + delta_r * delta_r * w
        self.c_fr += cfr + delta_f * delta_r * w
        self.mean_f += delta_f * nb / n
        self.mean_r += delta_r * nb / n
        self.n = n

    def add_edges(self, ef: np.ndarray, er: np.ndarray, ok: np.ndarray) -> None:
        self.edge_sum += np.sum((ef - er)[:, ok], axis=1)
        self.edge_n += int(ok.sum())

    def results(self, ratio: float) -> Dict[str, object]:
        """metric -> (per-band list or None, mean/all-band value)."""
        nan = float("nan")
        with np.errstate(invalid="ignore", divide="ignore"):
            n = self.n if self.n else nan
            rmse_k = np.sqrt(self.sse / n)
            mae_k = self.sae / n
            r2_k = 1.0 - self.sse / self.m2_r
            cc_k = self.c_fr / np.sqrt(self.m2_f * self.m2_r)
            rmae_k = self.rmae_sum / np.where(self.rmae_n > 0, self.rmae_n, nan)
            edge_k = self.edge_sum / (self.edge_n if self.edge_n else nan)
            ssim_k = self.ssim_sum / (self.ssim_n if self.ssim_n else nan)
            peak = self.ref_max - self.ref_min
            mse = self.sse / n
            psnr_k = np.where(mse > 0, 10.0 * np.log10(peak ** 2 / mse), np.inf)
            ergas_terms = rmse_k / self.mean_r
            ergas_k = 100.0 * ratio * np.abs(ergas_terms)
            ergas_all = 100.0 * ratio * math.sqrt(np.mean(ergas_terms ** 2))
        sam_all = self.sam_sum / self.sam_n if self.sam_n else nan
        values = {"RMSE": rmse_k, "MAE": mae_k, "R2": r2_k, "rMAE": rmae_k, "Edge": edge_k,
                  "SSIM": ssim_k, "ERGAS": ergas_k, "SAM": None, "CC": cc_k, "PSNR": psnr_k}
        out = {}
        for name in METRICS:
            per_band = values[name]
            if name == "ERGAS":
                out[name] = ([float(v) for v in per_band], float(ergas_all))
            elif name == "SAM":
                out[name] = (None, float(sam_all))
            else:
                out[name] = ([float(v) for v in per_band], float(np.mean(per_band)))
        return out


class MetricDict(dict):
    """metric -> value; also found case-insensitively (``mean["rmse"]``)."""

    def __missing__(self, key):
        for name, value in self.items():
            if isinstance(key, str) and name.lower() == key.lower():
                return value
        raise KeyError(key)


@dataclass
class MethodResult:
    """The metrics of one image against the reference."""
    role: str                 # "prediction", "compare" or "coarse"
    label: str                # shown in tables, e.g. "prediction (fused.tif)"
    path: str
    per_band: Dict[str, Optional[List[float]]]  # metric -> value per band (None: multi-band)
    mean: Dict[str, float]    # metric -> mean over bands (ERGAS, SAM: all-band value)

    def value(self, metric: str, band: Optional[int] = None) -> Optional[float]:
        if band is None:
            return self.mean.get(metric)
        values = self.per_band.get(metric)
        return None if values is None else values[band]


@dataclass
class Evaluation:
    prediction: str
    reference: str
    coarse: Optional[str]
    compare: Optional[str]
    band_names: List[str]
    methods: List[MethodResult]
    counted_pixels: int
    total_pixels: int
    ratio: float
    ratio_note: str
    reference_range: List[List[float]]          # per band [min, max] over counted pixels
    histograms: Dict[str, np.ndarray] = field(default_factory=dict)   # role -> (b, bins, bins)
    histogram_range: List[List[float]] = field(default_factory=list)  # per band [lo, hi]
    conventions: Dict[str, str] = field(default_factory=lambda: dict(CONVENTIONS))
    seconds: float = 0.0

    @property
    def result(self) -> MethodResult:
        """The prediction's metrics."""
        return self.methods[0]

    @property
    def mean(self) -> Dict[str, float]:
        return self.methods[0].mean

    @property
    def per_band(self) -> Dict[str, Optional[List[float]]]:
        return self.methods[0].per_band

    def method(self, role: str) -> Optional[MethodResult]:
        return next((m for m in self.methods if m.role == role), None)

    @property
    def metric_names(self) -> List[str]:
        """The metric columns present: METRICS plus the MAEC columns that apply."""
        names = list(METRICS)
        for m in self.methods:
            for key in m.mean:
                if key not in names:
                    names.append(key)
        return names

    def to_dict(self) -> Dict:
        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v
        return {
            "prediction": self.prediction, "reference": self.reference,
            "coarse": self.coarse, "compare": self.compare,
            "bands": list(self.band_names),
            "counted_pixels": self.counted_pixels, "total_pixels": self.total_pixels,
            "ratio": self.ratio, "ratio_note": self.ratio_note,
            "reference_range": self.reference_range,
            "methods": [{"role": m.role, "label": m.label, "path": m.path,
                         "mean": {k: clean(v) for k, v in m.mean.items()},
                         "per_band": {k: clean(v) for k, v in m.per_band.items()}}
                        for m in self.methods],
            "conventions": self.conventions,
            "seconds": round(self.seconds, 3),
        }

    def rows(self) -> List[Dict]:
        """Flat rows (method, band, metrics...) for CSV files and attribute tables; the
        band 'mean' row holds the means over bands (ERGAS, SAM: all-band values)."""
        names = self.metric_names
        out = []
        for m in self.methods:
            for k, band in enumerate(list(self.band_names) + ["mean"]):
                row = {"method": m.role, "band": band}
                for name in names:
                    row[name] = m.value(name, None if band == "mean" else k) \
                        if name in m.mean else None
                out.append(row)
        return out


def coarse_ratio(reference: str, coarse: Optional[str], ratio: Optional[float]):
    """(h/l, note): the fine/coarse pixel-size ratio for ERGAS and where it came from: the
    project's one scale-ratio rule (``core.scale_ratio.resolve``) on the coarse raster;
    ``ratio`` given as h/l (<= 1) or as coarse/fine (> 1) overrides it."""
    if ratio and ratio <= 1:
        return float(ratio), f"h/l = {ratio:g} as given"
    rule = scale_ratio.resolve(reference, [coarse], ratio)
    return rule.h_over_l, f"h/l = 1/{rule.value:.4g} = {rule.h_over_l:.4f}: {rule.note}"


def evaluate_files(prediction: str, reference: str, coarse: Optional[str] = None,
                   compare: Optional[str] = None, ratio: Optional[float] = None,
                   band_names: Optional[Sequence[str]] = None,
                   progress: Optional[Callable[[float], None]] = None,
                   is_canceled: Optional[Callable[[], bool]] = None,
                   tile_size: int = DEFAULT_TILE,
                   image_names: Optional[Dict[str, str]] = None) -> Evaluation:
    """Score ``prediction`` (and the optional ``compare`` prediction and ``coarse`` baseline,
    all on the reference grid with the same bands) against ``reference``, block by block.

    Two passes over the rasters: the first accumulates the sums (and the reference range),
    the second the SSIM (which needs the range) and the predicted-vs-reference histograms.
    ``image_names``: role -> how the tables name its image (default: the file name; '' = the role
    alone). Raises ``raster.RasterError`` for mismatched grids or band counts; ``Canceled``
    when ``is_canceled()`` turns true.
    """
    started = time.perf_counter()
    progress = progress or (lambda _f: None)
    is_canceled = is_canceled or (lambda: False)
    ref_info = raster.raster_info(reference)
    inputs = [("prediction", prediction), ("compare", compare), ("coarse", coarse)]
    inputs = [(role, path) for role, path in inputs if path]
    for role, path in inputs:
        info = raster.raster_info(path)
        problem = ref_info.grid.mismatch(info.grid)
        if problem:
            raise raster.RasterError(f"the {role} raster '{path}' is not on the reference "
                                     f"grid: {problem}")
        if info.band_count != ref_info.band_count:
            raise raster.RasterError(
                f"the {role} raster '{path}' has {info.band_count} bands but the reference "
                f"has {ref_info.band_count}")
    bands = ref_info.band_count
    if band_names:
        names = [str(n) for n in band_names]
        if len(names) != bands:
            raise raster.RasterError(f"{len(names)} band names given for {bands} bands")
    else:
        names = list(ref_info.band_names)
        if all(n.startswith("band ") for n in names):
            names = list(raster.raster_info(prediction).band_names)
    h_over_l, ratio_note = coarse_ratio(reference, coarse, ratio)
    width, height = ref_info.grid.width, ref_info.grid.height
    stats = {role: _Stats(bands) for role, _ in inputs}
    total = 2 * tile_count(width, height, tile_size)
    done = 0

    def read(tile):
        ref = raster.read_window(reference, *tile.read_window)
        others = {role: raster.read_window(path, *tile.read_window) for role, path in inputs}
        valid = raster.valid_mask(ref, *others.values())
        return ref, others, valid

    # pass 1: sums, range, Edge (halo 1: the Roberts cross looks one pixel right and down)
    data = raster.DataCheck(["REFERENCE"] + [role.upper() for role, _ in inputs])
    for tile in iter_tiles(width, height, tile_size, halo=1):
        check_canceled(is_canceled)
        ref, others, valid = read(tile)
        data.add(tile.crop(ref), *(tile.crop(image) for image in others.values()))
        core = tile.crop(valid)
        below = valid[1:, 1:]  # from the core's origin to one past its end
        edge_ok = (below[:-1, :-1] & below[1:, 1:] & below[:-1, 1:] & below[1:, :-1])
        edge_ok = edge_ok[:tile.height, :tile.width]
        r_core = tile.crop(ref)[:, core].astype(np.float64)
        er = roberts(np.where(valid, ref, 0)[:, 1:, 1:])[:, :tile.height, :tile.width]
        for role, image in others.items():
            stats[role].add_pixels(tile.crop(image)[:, core].astype(np.float64), r_core)
            ef = roberts(np.where(valid, image, 0)[:, 1:, 1:])[:, :tile.height, :tile.width]
            stats[role].add_edges(ef, er, edge_ok)
        done += 1
        progress(done / total)
    data.check()        # no pixel to score: a clear error, not an infinite PSNR
    first = stats["prediction"]
    ref_min, ref_max = first.ref_min, first.ref_max
    data_range = np.where(np.isfinite(ref_max - ref_min), ref_max - ref_min, 0.0)
    span = np.where(data_range > 0, data_range, 1.0)
    lo, hi = ref_min - 0.05 * span, ref_max + 0.05 * span
    lo, hi = np.where(np.isfinite(lo), lo, 0.0), np.where(np.isfinite(hi), hi, 1.0)

    # pass 2: SSIM (halo = window radius) and the predicted-vs-reference histograms
    r = SSIM_RADIUS
    for tile in iter_tiles(width, height, tile_size, halo=r):
        check_canceled(is_canceled)
        ref, others, valid = read(tile)
        core = tile.crop(valid)
        r_core = tile.crop(ref)
        ok = window_valid(valid)
        for role, image in others.items():
            s = stats[role]
            for k in range(bands):
                smap, _ = ssim_map_valid(image[k], ref[k], valid, data_range[k], ok)
                s.ssim_sum[k] += float(np.sum(smap[ok], dtype=np.float64))
                f_k = np.clip(tile.crop(image)[k][core], lo[k], hi[k])
                s.hist[k] += np.histogram2d(r_core[k][core], f_k, bins=HIST_BINS,
                                            range=[[lo[k], hi[k]], [lo[k], hi[k]]])[0] \
                    .astype(np.int64)
            s.ssim_n += int(ok.sum())
        done += 1
        progress(done / total)

    methods = []
    for role, path in inputs:
        results = stats[role].results(h_over_l)
        per_band = MetricDict((k, v[0]) for k, v in results.items())
        mean = MetricDict((k, v[1]) for k, v in results.items())
        name = (image_names or {}).get(role, os.path.basename(path))
        methods.append(MethodResult(role, f"{role} ({name})" if name else role, path,
                                    per_band, mean))
    by_role = {m.role: m for m in methods}
    for m in methods:
        for baseline in ("coarse", "compare"):
            if baseline in by_role and baseline != m.role and not (
                    m.role == "coarse" and baseline == "compare"):
                values = maec(m.per_band["MAE"], by_role[baseline].per_band["MAE"])
                m.per_band[f"MAEC_{baseline}"] = [float(v) for v in values]
                m.mean[f"MAEC_{baseline}"] = float(np.mean(values))
    progress(1.0)
    return Evaluation(
        prediction=prediction, reference=reference, coarse=coarse, compare=compare,
        band_names=names, methods=methods, counted_pixels=first.n,
        total_pixels=width * height, ratio=h_over_l, ratio_note=ratio_note,
        reference_range=[[float(a), float(b)] for a, b in zip(ref_min, ref_max)],
        histograms={role: s.hist for role, s in stats.items()},
        histogram_range=[[float(a), float(b)] for a, b in zip(lo, hi)],
        seconds=time.perf_counter() - started)
