"""STARFM (Gao et al. 2006): the Spatial and Temporal Adaptive Reflectance Fusion Model.

For every fine pixel, within a moving window of ``window`` x ``window`` fine pixels:

* candidates are the pixels spectrally similar to the centre in the fine image of the
  pair, band by band: ``|F(x) - F(centre)| <= std(F) * 2 / classes`` (``std`` over the
  whole image, per band);
* candidates are kept only when they are better than the centre, within the sensor
  uncertainties: ``S(x) < max_k S_k(centre) + sigma_fc`` with the spectral distance
  ``S = |F - C|`` and, when ``temporal_filter``, ``T(x) < max_k T_k(centre) + sigma_cc``
  with the temporal distance ``T = |C(t2) - C(tk)|`` (by default only with two pairs, as
  starfm4py does: with one pair it rejects exactly the changed pixels)
  (``sigma_fc = sqrt(fine_u^2 + coarse_u^2)``, ``sigma_cc = sqrt(2) coarse_u``);
* each candidate predicts ``F(x) + C(x, t2) - C(x, tk)`` and weighs
  ``1 / (S * T * D)`` (``D = 1 + d / A``, ``d`` the distance in fine pixels, ``A`` the
  spatial factor, default ``window / 2``); weights are normalised over all candidates
  of all pairs, so that with two pairs (t1 and t3) each pair's prediction is weighted by
  its share of the total weight, as in the paper;
* where the centre's ``S`` or ``T`` is exactly zero, the centre's own prediction is used.

Vectorised as a loop over window offsets applying shifted whole-chunk arrays (no per-pixel
Python loop). The only global statistic is the per-band standard deviation of each fine
image (``prepare``); ``predict_tile`` then computes any window of the image given a halo
of ``halo(state)`` pixels, so tiled and untiled runs agree. A fusion method of
``core.methods`` (the protocol: ``prepare``, ``halo``, ``tile_multiple``, ``predict_tile``).
"""
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Optional

import numpy as np

from . import methods, raster, tiling
from . import moving_window as common

__all__ = ["StarfmParams", "StarfmState", "window_for_scale_ratio", "halo",
           "tile_multiple", "prepare", "predict_tile"]

CHUNK = 96  # output pixels per side of the cache-sized chunks of the offset loop
PREPARE_SHARE = 0.05  # of a run's progress


@dataclass(frozen=True)
class StarfmParams:
    window: int = 31                    # moving window, fine pixels (odd)
    classes: int = 4                    # number of classes of the similarity threshold
    fine_uncertainty: float = 0.002     # reflectance
    coarse_uncertainty: float = 0.002   # reflectance
    spatial_factor: Optional[float] = None  # A of D = 1 + d / A; None: window / 2
    temporal_filter: Optional[bool] = None  # filter on |C(t2) - C(tk)| too; None: with 2 pairs
    log_weight: bool = False            # C = ln(S*B+2) ln(T*B+2) D (B = 1/weight_offset)
    weight_offset: float = 1e-4         # added to S and T so that zero distances stay finite

    def __post_init__(self):
        if self.window < 1 or self.window % 2 == 0:
            raise ValueError(f"window must be a positive odd number of pixels, got {self.window}")
        if self.classes < 1:
            raise ValueError(f"classes must be >= 1, got {self.classes}")

    @property
    def radius(self) -> int:
        return self.window // 2

    @property
    def a(self) -> float:
        return float(self.spatial_factor) if self.spatial_factor else self.window / 2.0


def window_for_scale_ratio(scale_ratio: float, coarse_pixels: float = 1.5) -> int:
    """The original's search distance, 1.5 coarse pixels (750 m for 500 m MODIS; 25 pixels
    at 30 m), in odd fine pixels."""
    n = int(round(coarse_pixels * float(scale_ratio)))
    return max(3, n + 1 if n % 2 == 0 else n)


@dataclass
class StarfmState:
    METHOD: ClassVar[str] = "starfm"
    params: StarfmParams
    thresholds: np.ndarray              # (pairs, bands) similarity thresholds, reflectance
    band_count: int = field(default=0)


def halo(state: StarfmState) -> int:
    return state.params.radius


def tile_multiple(state: StarfmState) -> int:
    return 1


def prepare(pairs, coarse_t2, params: StarfmParams = StarfmParams(),
            progress: Callable[[float], None] = tiling.no_progress,
            is_canceled: Callable[[], bool] = tiling.never_canceled, log=None) -> StarfmState:
    """Global statistics: per-band std of each fine image over pixels valid everywhere,
    read strip by strip from the sources (memory bounded by one strip)."""
    sources = [image for pair in pairs for image in pair] + [coarse_t2]
    moments = [common.BandMoments(pairs[0][0].band_count) for _ in pairs]
    data = raster.DataCheck(methods.input_names(len(pairs)))
    for y0, y1, strips in common.strips(sources):
        tiling.check_canceled(is_canceled)
        data.add(*strips)
        valid = common.valid_mask(*strips)
        for m, fine in zip(moments, strips[0:-1:2]):
            m.add(fine, valid)
        progress(y1 / coarse_t2.height)
    data.check()
    thresholds = np.stack([m.std * 2.0 / params.classes for m in moments]).astype(np.float32)
    return StarfmState(params, thresholds, thresholds.shape[1])


def predict_tile(state: StarfmState, window,
                 is_canceled: Optional[Callable[[], bool]] = None) -> np.ndarray:
    """The fine image at t2 over a ``methods.TileWindow`` (``window.margin`` pixels on each
    side left NaN)."""
    (f1, c1), *second = window.pairs
    f3, c3 = second[0] if second else (None, None)
    return _predict_window(state, f1, c1, window.coarse_t2, f3, c3, window.margin,
                           is_canceled)


def _predict_window(state: StarfmState, f1, c1, c2, f3, c3, margin: int,
                    is_canceled: Optional[Callable[[], bool]]) -> np.ndarray:
    """Predict the fine image at t2 over the window of the given arrays.

    Pixels closer than ``margin`` to the window edge are not computed (NaN): they only
    serve as neighbours. With ``margin >= halo(state)`` (and NaN outside the image) the
    result equals the one of an untiled run.
    """
    p = state.params
    f1, c1, c2, f3, c3 = map(common.as_float32, (f1, c1, c2, f3, c3))
    bands, height, width = common.check_shapes(f1, c1, c2, f3, c3)
    pairs = [(f1, c1)] + ([(f3, c3)] if f3 is not None else [])
    r = p.radius
    valid = common.valid_mask(f1, c1, c2, f3, c3)
    out = np.full((bands, height, width), np.nan, np.float32)
    h0, h1, w0, w1 = margin, height - margin, margin, width - margin
    if h1 <= h0 or w1 <= w0:
        return out

    # per pair, per pixel: fine image, spectral and temporal distances, local weight
    # 1/(S*T) and weighted prediction; invalid pixels get NaN / zero weight
    eps = np.float32(p.weight_offset)
    fine, spec, temp, wloc, wpred, pred_pairs = [], [], [], [], [], []
    for fk, ck in pairs:
        s = np.abs(fk - ck)
        t = np.abs(c2 - ck)
        if p.log_weight:
            scale = np.float32(1.0 / p.weight_offset)
            w = 1.0 / (np.log(s * scale + 2.0) * np.log(t * scale + 2.0))
        else:
            w = 1.0 / ((s + eps) * (t + eps))
        pred = fk + (c2 - ck)
        w = np.where(valid, w, 0).astype(np.float32)
        wp = np.where(valid, w * pred, 0).astype(np.float32)
        fk = np.where(valid, fk, np.nan).astype(np.float32)
        s = np.where(valid, s, np.inf).astype(np.float32)
        t = np.where(valid, t, np.inf).astype(np.float32)
        fine.append(common.nan_pad(fk, r))
        spec.append(common.nan_pad(s, r))     # NaN / inf never pass the filters
        temp.append(common.nan_pad(t, r))
        wloc.append(np.pad(w, [(0, 0), (r, r), (r, r)]))     # zero weight outside
        wpred.append(np.pad(wp, [(0, 0), (r, r), (r, r)]))
        pred_pairs.append(common.nan_pad(pred, r))

    sigma_fc = np.float32(np.hypot(p.fine_uncertainty, p.coarse_uncertainty))
    sigma_cc = np.float32(np.sqrt(2.0) * p.coarse_uncertainty)
    thresholds = [state.thresholds[k][:, None, None].astype(np.float32)
                  for k in range(len(pairs))]
    temporal_filter = len(pairs) > 1 if p.temporal_filter is None else p.temporal_filter
    offsets = common.window_offsets(r)
    inv_d = [np.float32(1.0 / (1.0 + d / p.a)) for _, _, d in offsets]

    def chunk(y0, y1, x0, x1):
        cy0, cy1, cx0, cx1 = h0 + y0 + r, h0 + y1 + r, w0 + x0 + r, w0 + x1 + r
        centre = (slice(None), slice(cy0, cy1), slice(cx0, cx1))
        f_c = [f[centre] for f in fine]
        s_max = np.max([s[centre] for s in spec], axis=0)
        s_max = np.where(np.isfinite(s_max), s_max + sigma_fc, -np.inf).astype(np.float32)
        t_max = np.max([t[centre] for t in temp], axis=0)
        t_max = np.where(np.isfinite(t_max), t_max + sigma_cc, -np.inf).astype(np.float32)
        shape = f_c[0].shape
        num = np.zeros(shape, np.float32)
        den = np.zeros(shape, np.float32)
        tmp = np.empty(shape, np.float32)
        mask = np.empty(shape, bool)
        mask2 = np.empty(shape, bool)
        weight = np.empty(shape, np.float32)
        for (dy, dx, _), inv in zip(offsets, inv_d):
            window = (slice(None), slice(cy0 + dy, cy1 + dy), slice(cx0 + dx, cx1 + dx))
            for k in range(len(pairs)):
                np.subtract(fine[k][window], f_c[k], out=tmp)
                np.abs(tmp, out=tmp)
                np.less_equal(tmp, thresholds[k], out=mask)
                np.less(spec[k][window], s_max, out=mask2)
                mask &= mask2
                if temporal_filter:
                    np.less(temp[k][window], t_max, out=mask2)
                    mask &= mask2
                np.multiply(mask, inv, out=weight)
                np.multiply(wloc[k][window], weight, out=tmp)
                den += tmp
                np.multiply(wpred[k][window], weight, out=tmp)
                num += tmp
        with np.errstate(invalid="ignore", divide="ignore"):
            result = num / den
        # as in the original: where the centre's spectral or temporal distance is zero in
        # a pair, that pair's own prediction of the centre is taken (mean over such pairs)
        exact_sum = np.zeros(shape, np.float32)
        exact_n = np.zeros(shape, np.float32)
        for k in range(len(pairs)):
            zero = (spec[k][centre] == 0) | (temp[k][centre] == 0)
            exact_sum += np.where(zero, pred_pairs[k][centre], 0)
            exact_n += zero
        result = np.where(exact_n > 0, exact_sum / np.maximum(exact_n, 1), result)
        out[:, h0 + y0:h0 + y1, w0 + x0:w0 + x1] = result

    common.run_chunks(chunk, h1 - h0, w1 - w0, CHUNK, is_canceled)
    out[:, ~valid] = np.nan
    return out
