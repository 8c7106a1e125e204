"""The one scale-ratio rule: how many fine pixels one coarse pixel spans.

Every algorithm that needs the coarse/fine pixel-size ratio (fuse, train, FSDAF, STARFM's
window, evaluate's ERGAS h/l) asks ``resolve`` and logs the ``ScaleRatio.note`` it returns.
The rule, first match wins:

1. ``parameter``: a ratio the user gave (> 0);
2. ``metadata``: the coarse raster's ``STFUSION_COARSE_PIXEL_SIZE`` (written by
   stfusion:resample_modis: the source pixel size in the units of the fine grid) over the
   fine pixel size;
3. ``estimated``: the period of the coarse image's pixel structure on the fine grid
   (``estimate_period``): a coarse image resampled onto the fine grid is piecewise constant
   (nearest, block means), piecewise linear (bilinear) or piecewise cubic (bicubic) between
   the coarse pixel centres, so the absolute first, second or third differences along rows
   and columns peak once per coarse pixel;
4. ``assumed``: MODIS 500 m over the fine pixel size.
"""
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from . import raster

METADATA_KEY = "STFUSION_COARSE_PIXEL_SIZE"
# metadata items that may give the coarse raster's native pixel size (in the units of the
# fine grid); ours first
METADATA_KEYS = (METADATA_KEY, "COARSE_PIXEL_SIZE", "NATIVE_PIXEL_SIZE", "SOURCE_PIXEL_SIZE")
ASSUMED_COARSE_PIXEL_M = 500.0
MIN_RATIO, MAX_RATIO = 2.0, 64.0
ESTIMATE_WINDOW = 512        # side of the central window read for the estimate
COARSE_STEP = 0.1            # period search: first pass, then refined to PERIOD_STEP
PERIOD_STEP = 0.01
DIFFERENCE_ORDERS = (1, 2, 3)
# for an estimate to count, the comb of knots must carry at least MIN_CONTRAST times the
# mean difference energy with an evidence of at least MIN_EVIDENCE (see ``_evidence``), and
# the period must repeat at least MIN_PERIODS times in the window
MIN_CONTRAST = 2.0
MIN_EVIDENCE = 4.0
MIN_PERIODS = 2.5


@dataclass(frozen=True)
class ScaleRatio:
    """A coarse/fine pixel-size ratio and where it came from."""
    value: float
    source: str                  # "parameter", "metadata", "estimated" or "assumed"
    note: str

    @property
    def block(self) -> int:
        """The ratio rounded: the side of a coarse pixel's block in fine pixels."""
        return max(1, int(round(self.value)))

    @property
    def h_over_l(self) -> float:
        """Fine over coarse pixel size (ERGAS)."""
        return 1.0 / self.value


@dataclass(frozen=True)
class PeriodEstimate:
    period: float                # fine pixels per coarse pixel
    contrast: float              # comb energy over mean energy (1 = no structure)
    order: int                   # difference order that showed it


def _profiles(images: Sequence[np.ndarray], order: int) -> list:
    """Mean |order-th difference| along columns and along rows, per image."""
    out = []
    for image in images:
        for axis in (-1, -2):
            d = np.abs(np.diff(image.astype(np.float64), n=order, axis=axis))
            d = np.moveaxis(d, axis, -1).reshape(-1, d.shape[axis])
            finite = np.isfinite(d)
            count = finite.sum(0)
            profile = np.where(finite, d, 0.0).sum(0) / np.maximum(count, 1)
            if (count > 0).sum() > 4 and profile[count > 0].mean() > 0:
                out.append(np.where(count > 0, profile / profile[count > 0].mean(), 0.0))
    return out


def _comb_mean(profiles: list, period: float) -> Tuple[float, float]:
    """(mean of the profiles on their best comb of knots ``period`` apart (each profile at
    its own best phase), knots per profile)."""
    means, knots_per = [], []
    for p in profiles:
        n = len(p)
        count = int(n / period) + 1
        knots = np.round(np.arange(int(np.ceil(period)))[:, None]
                         + period * np.arange(count)[None])
        inside = knots < n
        values = np.where(inside, p[np.minimum(knots, n - 1).astype(int)], 0.0)
        means.append(float((values.sum(1) / np.maximum(inside.sum(1), 1)).max()))
        knots_per.append(n / period)
    return float(np.mean(means)), float(np.mean(knots_per))


def _evidence(profiles: list, period: float) -> Tuple[float, float]:
    """(evidence, contrast) of a period: the comb's excess over the mean, times the square
    root of its number of knots, so that a few lucky knots of a long period do not beat
    many knots of the true one; a multiple of the true period has the same contrast on half
    the knots, a divisor the same knots diluted by gaps: both score about 1/sqrt(2) lower."""
    mean, knots = _comb_mean(profiles, period)
    return (mean - 1.0) * np.sqrt(knots), mean


def _best_period(profiles: list, periods: np.ndarray) -> Tuple[float, float, float]:
    """(period, evidence, contrast) of the best of ``periods``; where its neighbours hit the
    same knots (same contrast), the middle of that run of periods."""
    scored = np.array([_evidence(profiles, p) for p in periods])
    i = j = k = int(np.argmax(scored[:, 0]))
    same = np.abs(scored[:, 1] - scored[i, 1]) < 1e-9
    while j > 0 and same[j - 1]:
        j -= 1
    while k < len(periods) - 1 and same[k + 1]:
        k += 1
    return float(periods[(j + k) // 2]), float(scored[i, 0]), float(scored[i, 1])


def estimate_period(images: Sequence[np.ndarray]) -> Optional[PeriodEstimate]:
    """Period (fine pixels) of the coarse pixel structure of ``images`` ((bands, rows,
    cols) coarse images on the fine grid, NaN as nodata), or None when no difference order
    shows a clear one: a search in steps of ``COARSE_STEP`` refined to ``PERIOD_STEP``."""
    best: Optional[PeriodEstimate] = None
    best_evidence = 0.0
    for order in DIFFERENCE_ORDERS:
        profiles = _profiles(images, order)
        if not profiles:
            continue
        top = min(MAX_RATIO, min(len(p) for p in profiles) / MIN_PERIODS)
        periods = np.arange(MIN_RATIO, top + COARSE_STEP / 2, COARSE_STEP)
        if len(periods) == 0:
            continue
        centre = _best_period(profiles, periods)[0]
        fine = np.arange(max(MIN_RATIO, centre - COARSE_STEP),
                         centre + COARSE_STEP + PERIOD_STEP / 2, PERIOD_STEP)
        period, evidence, contrast = _best_period(profiles, fine)
        if contrast >= MIN_CONTRAST and evidence >= MIN_EVIDENCE and evidence > best_evidence:
            best, best_evidence = PeriodEstimate(period, contrast, order), evidence
    return best


def _metadata_pixel_size(path: str) -> Optional[Tuple[float, str]]:
    """(native pixel size, metadata key) of a coarse raster, or None."""
    metadata = {k.upper(): v for k, v in (raster.open_dataset(path).GetMetadata() or {}).items()}
    for key in METADATA_KEYS:
        try:
            size = float(metadata[key])
        except (KeyError, ValueError):
            continue
        if np.isfinite(size) and size > 0:
            return size, key
    return None


def _central_window(path: str, side: int = ESTIMATE_WINDOW) -> np.ndarray:
    info = raster.raster_info(path)
    w, h = min(side, info.grid.width), min(side, info.grid.height)
    x0, y0 = (info.grid.width - w) // 2, (info.grid.height - h) // 2
    return raster.read_window(path, x0, y0, w, h)


def fine_pixel_size(fine_path: str) -> float:
    return float(min(raster.raster_info(fine_path).grid.pixel_size))


def resolve(fine_path: str, coarse_paths: Sequence[Optional[str]],
            given: Optional[float] = None) -> ScaleRatio:
    """The scale ratio for a fine raster and its coarse rasters (on the fine grid) by the
    rule of the module docstring."""
    if given:
        return ScaleRatio(float(given), "parameter", f"scale ratio {float(given):g} as given")
    fine = fine_pixel_size(fine_path)
    coarse = [p for p in coarse_paths if p]
    for path in coarse:
        found = _metadata_pixel_size(path)
        if found and found[0] > fine > 0:
            size, key = found
            value = min(size / fine, MAX_RATIO)
            return ScaleRatio(value, "metadata",
                              f"scale ratio {value:.4g} = {size:g} / {fine:g} from the "
                              f"{key} metadata of '{path}'")
    estimate = estimate_period([_central_window(p) for p in coarse]) if coarse else None
    if estimate:
        return ScaleRatio(estimate.period, "estimated",
                          f"scale ratio {estimate.period:.3g} estimated from the coarse "
                          f"images' pixel structure (period of their order-{estimate.order} "
                          f"differences, contrast {estimate.contrast:.1f})")
    value = float(np.clip(ASSUMED_COARSE_PIXEL_M / fine, MIN_RATIO, MAX_RATIO)) \
        if fine > 0 else 16.0
    return ScaleRatio(value, "assumed",
                      f"scale ratio {value:.3g} assumed ({ASSUMED_COARSE_PIXEL_M:g} m MODIS "
                      f"over the {fine:g} fine pixel): the coarse images carry no "
                      f"{METADATA_KEY} metadata and show no clear pixel structure; set the "
                      "scale ratio to override")
