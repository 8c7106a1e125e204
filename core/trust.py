"""How far the inputs of a fusion can be trusted, measured from the inputs themselves.

The default fusion predicts ``P = F1 + change`` (``core/stfnet.py``): the fine detail of the
pair's fine image F1, moved by the coarse change. That is right where the pair is consistent
(its fine and coarse images agree at the coarse scale) and where the scene's structure at t1
still holds at t2. Where either fails (unmixed haze or cloud in F1, a wrong date, a
calibration offset, phenology or land-cover change over a long gap) the coarse image of t2
alone is the better answer. This module measures both at the coarse scale, on the block
grid of coarse pixels (block means of F1, C1 and C2 over ``s x s`` blocks):

**Pair consistency** (``PairTrust``, scene-wide, in the prepare state): per band the
correlation of the F1 and C1 block means, their bias ``mean(C1 - F1)``, the spread of the
residual ``C1 - F1 - bias`` and the spread of F1 itself; the level ``median(C1 - F1)`` and
the robust spread (1.4826 x the median absolute deviation) of ``C1 - F1``, which a local
fault does not widen. Locally (``TileTrust``): the local level of ``C1 - F1`` over 5 x 5
blocks against the scene-wide one; beyond ``LOCAL_SIGMAS`` robust spreads (against C2 as
well) the pair is locally inconsistent (``consistency`` -> 0, Gaussian in the excess). The
5 x 5 blocks make it a fault of an area (haze, a cloud's edge, shadow), not of a few coarse
pixels: on hubei_ndvi isolated blocks are many spreads off at every date alike (small low
NDVI objects against 16-day maximum-NDVI composites), and there F1 + (C2 - C1) is right.
The scene-wide bias counts the same way against the standard spread (a pair whose coarse
image is off by more than ``CONSISTENCY_SIGMAS`` residual spreads is not trusted at full
weight: the offset of a calibration error reaches the prediction as ``bias2 - bias1``).
With two pairs, a pair whose correlation is below ``DROP_SHARE`` of the other's is dropped
(``check_pairs``).

**Temporal trust**: the share of the fine structure of t1 that is still in the coarse image
at t2, as the instrumental-variable slope of C2 on C1 with F1 as the instrument over
``window`` x ``window`` blocks, ``ratio = cov(F1, C2) / cov(F1, C1)`` (F1's block means are
free of the coarse sensor's noise, so the slope is not attenuated by it; ridge-shrunk towards
the scene-wide ratio where the window has little contrast), clipped to [0, 1]. It reduces
the trust only as far as the pair is inconsistent: ``q = min(1, residual spread / (Q_SIGNAL x
F1 spread))`` locally: when C1 is the exact block mean of F1 (no residual), the fusion's
residual distribution reproduces C2's block means exactly and the coarse-scale persistence
says nothing about the fine one.

**The rule**: ``trust = consistency x (1 - q (1 - ratio))``, in [0, 1], per pixel and band
(block values interpolated bilinearly between block centres), shrunk towards 1 on scenes too
small for coarse statistics (the unmixing confidence ``alpha``: ``trust <- alpha trust + 1 -
alpha``); the prediction moves continuously from the fusion towards C2:
``P' = C2 + trust (P - C2 + level) - trust x transfer x level``: the detail moves with the
trust, the level offset C - F measured at t1 with the trust and ``transfer = exp(-(gap /
OFFSET_MEMORY_DAYS)^2)`` of the days between the pair's and t2's coarse images (from their
dates, ``core/acquisition.py``; 1 when a date is unknown): a sensor offset holds over days to
weeks, not over a season (hubei_ndvi: the composite is 0.066 NDVI above Landsat in April,
0.063 below in December).

Everything per tile is local with a reach of ``window // 2 + 2`` blocks (within the fusion's
halo), so a tiled run equals an untiled run.
"""
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch

from . import stfnet_fields

CONSISTENCY_SIGMAS = 2.0     # scene-wide bias beyond this many residual spreads
LOCAL_SIGMAS = 3.5           # local bias beyond this many robust residual spreads
LOCAL_BIAS_RADIUS = 2        # blocks: 5 x 5 blocks for the local bias
OFFSET_MEMORY_DAYS = 75.0    # a level offset is carried exp(-(gap / this)^2): half at 62 days
RATIO_RIDGE = 0.5            # shrinkage of the local ratio towards the scene-wide one
Q_SIGNAL = 0.25              # residual spread at which the inconsistency weight q reaches 1
DROP_SHARE = 0.6             # two pairs: drop one whose correlation is below this share
MIN_SPREAD = 1e-4            # floor of spreads (data units): exact (simulated) coarse images
UNCERTAINTY_SCALE = 0.7      # expected absolute error per unit of the error proxy
SUMMARY_WINDOW = 2048        # report: uncertainty scored on a central window this wide


def excess_trust(excess):
    """1 up to an excess of 1, then a Gaussian fall: exp(-2 (excess - 1)^2) (0.14 at 2).
    Works on numpy arrays and torch tensors."""
    if isinstance(excess, np.ndarray):
        return np.exp(-2.0 * np.maximum(excess - 1.0, 0.0) ** 2)
    return (-2.0 * (excess - 1.0).clamp_min(0.0) ** 2).exp()


@dataclass
class PairTrust:
    """Scene-wide consistency of one pair (F1, C1) and its temporal relation to C2, per
    band, from the block means of the prepare windows (small and picklable)."""
    correlation: np.ndarray      # corr(F1, C1) of block means
    bias: np.ndarray             # mean(C1 - F1)
    spread: np.ndarray           # std(C1 - F1 - bias)
    signal: np.ndarray           # std(F1 block means)
    covariance: np.ndarray       # cov(F1, C1) of block means
    ratio: np.ndarray            # cov(F1, C2) / cov(F1, C1), clipped to [0, 1]
    bias_t2: np.ndarray          # mean(C2 - F1): the same against the coarse image of t2
    spread_t2: np.ndarray        # std(C2 - F1 - bias_t2)
    level: np.ndarray            # median(C1 - F1): the sensors' level offset, robust to a
    #                              local fault (haze in F1) that the mean ``bias`` includes
    level_t2: np.ndarray         # median(C2 - F1)
    robust_spread: np.ndarray    # 1.4826 x median |C1 - F1 - level|: a local fault does not
    #                              widen it (it would hide itself in the standard deviation)
    robust_spread_t2: np.ndarray  # the same for C2 - F1
    gap_days: Optional[float] = None   # days between the pair's and t2's coarse images
    weight: float = 1.0          # 0: the pair is dropped
    note: str = ""

    @property
    def offset_transfer(self) -> float:
        """The share of the level offset measured at t1 that is carried to t2:
        ``exp(-(gap / OFFSET_MEMORY_DAYS)^2)``, 1 when the dates are unknown."""
        if self.gap_days is None:
            return 1.0
        return float(np.exp(-(self.gap_days / OFFSET_MEMORY_DAYS) ** 2))

    @property
    def coarse_noise(self) -> np.ndarray:
        """Per band, in [0, 1]: how far the coarse sensor departs from the block means of F
        (the residual spread over ``Q_SIGNAL`` x F's spread; ``q`` of the temporal trust):
        0 for exact block means, 1 for a real coarse sensor."""
        return np.clip(self.spread / (Q_SIGNAL * self.signal), 0.0, 1.0)

    @property
    def bias_trust(self) -> np.ndarray:
        """Per band: 1 while the bias is within CONSISTENCY_SIGMAS residual spreads."""
        return excess_trust(np.abs(self.bias) / (CONSISTENCY_SIGMAS * self.spread))

    def summary(self) -> dict:
        r = lambda a: [round(float(x), 4) for x in np.atleast_1d(a)]  # noqa: E731
        return {"correlation": r(self.correlation), "bias": r(self.bias),
                "residual_spread": r(self.spread), "temporal_ratio": r(self.ratio),
                "bias_trust": r(self.bias_trust), "level_offset": r(self.level),
                "gap_days": self.gap_days, "offset_carried": round(self.offset_transfer, 3),
                "weight": self.weight, "note": self.note}

    def tensors(self, device) -> dict:
        t = lambda a: torch.as_tensor(np.asarray(a, np.float32), device=device)  # noqa: E731
        return dict(bias=t(self.bias), spread=t(self.spread), signal=t(self.signal),
                    covariance=t(self.covariance), ratio=t(self.ratio),
                    bias_trust=t(self.bias_trust), bias_t2=t(self.bias_t2),
                    spread_t2=t(self.spread_t2), level=t(self.level),
                    level_t2=t(self.level_t2), robust_spread=t(self.robust_spread),
                    robust_spread_t2=t(self.robust_spread_t2))


def _block_means(arrays: Sequence[np.ndarray], s: int):
    """Block means of the images (valid in all) and the block weights (valid blocks)."""
    t = [torch.as_tensor(np.asarray(a, np.float32)) for a in arrays]
    valid = stfnet_fields.all_finite(*t)
    v = valid.float()
    nv = stfnet_fields.block_sum(v, s)
    inv = 1.0 / nv.clamp_min(1.0)
    means = [stfnet_fields.block_sum(torch.where(valid, a, 0.0), s) * inv for a in t]
    return means, (nv >= 0.5 * s * s).float()


def pair_trust(windows_f: Sequence[np.ndarray], windows_c: Sequence[np.ndarray],
               windows_c2: Sequence[np.ndarray], s: int,
               gap_days: Optional[float] = None) -> PairTrust:
    """``PairTrust`` of (F, C) for C2 from the prepare windows (block-aligned); ``gap_days``:
    the days between C and C2 (None: unknown)."""
    sums, differences, differences_t2 = None, [], []
    for f, c, c2 in zip(windows_f, windows_c, windows_c2):
        (bf, bc, b2), w = _block_means((f, c, c2), s)
        keep = w.reshape(-1) > 0
        cols = [x.reshape(x.shape[0], -1)[:, keep].double() for x in (bf, bc, b2)]
        differences.append(cols[1] - cols[0])
        differences_t2.append(cols[2] - cols[0])
        part = [cols[0], cols[1], cols[2], cols[0] ** 2, cols[1] ** 2, cols[0] * cols[1],
                cols[0] * cols[2], (cols[1] - cols[0]) ** 2, (cols[2] - cols[0]) ** 2]
        part = torch.stack([p.sum(1) for p in part] + [torch.full_like(cols[0][:, 0],
                                                                       float(keep.sum()))])
        sums = part if sums is None else sums + part
    n = sums[-1].clamp_min(1.0)
    mf, mc, m2, ff, cc, fc, f2, dd, dd2 = (sums[i] / n for i in range(9))
    var_f, var_c = (ff - mf ** 2).clamp_min(0), (cc - mc ** 2).clamp_min(0)
    cov_fc, cov_f2 = fc - mf * mc, f2 - mf * m2
    bias, bias2 = mc - mf, m2 - mf
    spread = (dd - bias ** 2).clamp_min(0).sqrt()
    spread2 = (dd2 - bias2 ** 2).clamp_min(0).sqrt()
    corr = cov_fc / (var_f * var_c).sqrt().clamp_min(1e-12)
    ratio = (cov_f2 / torch.where(cov_fc.abs() > 1e-12, cov_fc, torch.ones_like(cov_fc)))
    ratio = torch.where(cov_fc.abs() > 1e-12, ratio, torch.ones_like(ratio)).clamp(0, 1)
    a = lambda x: x.float().numpy()  # noqa: E731
    level, robust = _median_and_spread(differences)
    level_t2, robust_t2 = _median_and_spread(differences_t2)
    return PairTrust(a(corr), a(bias), np.maximum(a(spread), MIN_SPREAD),
                     np.maximum(a(var_f.sqrt()), MIN_SPREAD), a(cov_fc), a(ratio), a(bias2),
                     np.maximum(a(spread2), MIN_SPREAD), a(level), a(level_t2),
                     np.maximum(a(robust), MIN_SPREAD), np.maximum(a(robust_t2), MIN_SPREAD),
                     gap_days)


def _median_and_spread(columns):
    """Per band (rows): the median of the block differences and their robust spread,
    1.4826 x the median absolute deviation (the standard deviation of a normal sample)."""
    d = torch.cat(columns, 1)
    median = d.nanmedian(1).values
    return median, 1.4826 * (d - median[:, None]).abs().nanmedian(1).values


def check_pairs(trusts: List[PairTrust], log: Optional[Callable[[str], None]] = None) -> None:
    """Drop (weight 0) the worse of two pairs when its correlation is below ``DROP_SHARE``
    of the other's; say for each pair how far it is trusted and why."""
    say = log or (lambda _m: None)
    if len(trusts) == 2:
        r = [float(np.mean(t.correlation)) for t in trusts]
        worse = int(np.argmin(r))
        if r[worse] < DROP_SHARE * r[1 - worse]:
            trusts[worse].weight = 0.0
            trusts[worse].note = (f"dropped: its fine and coarse images correlate "
                                  f"{r[worse]:.2f} at the coarse scale, the other pair "
                                  f"{r[1 - worse]:.2f} (below {DROP_SHARE:g} of it: unmasked "
                                  "cloud, haze, shadow, misregistration or a wrong date)")
    for i, t in enumerate(trusts):
        if not t.note:
            t.note = "used"
            low = t.bias_trust < 0.99
            if low.any():
                t.note += (f"; coarse image off by {np.abs(t.bias).max():.4g} (more than "
                           f"{CONSISTENCY_SIGMAS:g} residual spreads): trusted at "
                           f"{float(t.bias_trust.min()):.2f}")
        say(f"pair {i + 1}: fine/coarse correlation {np.mean(t.correlation):.2f}, bias "
            f"{np.round(t.bias, 4).tolist()}, residual spread "
            f"{np.round(t.spread, 4).tolist()}, temporal ratio "
            f"{np.round(t.ratio, 2).tolist()}, level offset {np.round(t.level, 4).tolist()} "
            f"carried at {t.offset_transfer:.2f} ({_gap_text(t.gap_days)}): {t.note}")


def _gap_text(gap_days: Optional[float]) -> str:
    if gap_days is None:
        return "acquisition dates unknown: in full"
    return f"{gap_days:g} days between the coarse images"


class TileTrust:
    """The local trust fields of one pair over one window (tile + halo, block-aligned)."""

    def __init__(self, f1, c1, c2, stats: dict, s: int, window: int = 5,
                 alpha: float = 1.0):
        valid = stfnet_fields.all_finite(f1, c1, c2)
        v = valid.float()
        nv = stfnet_fields.block_sum(v, s)
        inv = 1.0 / nv.clamp_min(1.0)
        bw = (nv > 0.5).float()
        z = lambda a: torch.where(valid, a, 0.0)  # noqa: E731
        bf, bc, b2 = (stfnet_fields.block_sum(z(a), s) * inv for a in (f1, c1, c2))
        col = lambda name: stats[name][:, None, None]  # noqa: E731

        def local(x, radius):
            return stfnet_fields.box_sum(x * bw, radius) / stfnet_fields.box_sum(bw, radius).clamp_min(1.0)

        wr = stfnet_fields.window_radius(window)
        mf, mc, m2 = local(bf, wr), local(bc, wr), local(b2, wr)
        cov_fc = local(bf * bc, wr) - mf * mc
        cov_f2 = local(bf * b2, wr) - mf * m2
        ridge = RATIO_RIDGE * col("covariance")
        ratio = ((cov_f2 + ridge * col("ratio")) / torch.where(
            (cov_fc + ridge).abs() > 1e-12, cov_fc + ridge, torch.ones_like(cov_fc)))
        ratio = ratio.clamp(0.0, 1.0)
        residual = bc - bf - col("bias")
        res_spread = local(residual * residual, wr).clamp_min(0).sqrt()
        sig = (local(bf * bf, wr) - mf * mf).clamp_min(0).sqrt()
        q = (res_spread / (Q_SIGNAL * sig).clamp_min(MIN_SPREAD)).clamp(0.0, 1.0)
        temporal = 1.0 - q * (1.0 - ratio)
        # local consistency: F1's local bias beyond LOCAL_SIGMAS robust spreads against both
        # coarse images (C1 alone off is a fault of C1, whose change the fusion then
        # distributes with the rest), worst band
        excess = torch.minimum(
            local(bc - bf - col("level"), LOCAL_BIAS_RADIUS).abs()
            / (LOCAL_SIGMAS * col("robust_spread")),
            local(b2 - bf - col("level_t2"), LOCAL_BIAS_RADIUS).abs()
            / (LOCAL_SIGMAS * col("robust_spread_t2")))
        consistency = excess_trust(excess).amin(0, keepdim=True)
        trust = temporal * consistency * col("bias_trust")
        h, w = v.shape
        interp = stfnet_fields.Interp(h, w, s, bw)
        up = interp.up(torch.cat([trust, consistency]))
        b = f1.shape[0]
        self.trust = (alpha * up[:b]).add_(1.0 - alpha).clamp_(0.0, 1.0)
        self.consistency = (alpha * up[b:]).add_(1.0 - alpha).clamp_(0.0, 1.0)[0]
        self.valid = valid


def tile_reach(s: int, window: int = 5, around: int = 0) -> int:
    """How far (fine pixels) beyond a tile that starts on the block grid ``TileTrust``
    reads for its fields at the pixels up to ``around`` pixels outside the tile: the blocks
    interpolated to those pixels and the local windows around each of them."""
    radius = max(stfnet_fields.window_radius(window), LOCAL_BIAS_RADIUS)
    return (-(-around // s) + 1 + radius) * s


def error_reach(s: int) -> int:
    """How far (fine pixels) ``expected_error`` reads its inputs around a pixel: the
    within-coarse-pixel change (a coarse pixel wide) averaged over half a coarse pixel."""
    return s + max(1, s // 2)


def combined_trust(tile_trusts: Sequence[TileTrust], weights: Sequence[float]):
    """The trust in a prediction from several pairs: it falls only where every used pair
    (weight > 0) is distrusted, ``1 - prod(1 - trust_i)``."""
    distrust = 1.0
    for t, weight in zip(tile_trusts, weights):
        distrust = distrust * (1.0 - t.trust * float(weight > 0))
    return 1.0 - distrust


def blend(prediction, c2, trust_field, offset, carried):
    """``C2 + trust (P - C2 + offset) - trust carried``: from the fusion towards C2 where the
    trust is low. ``offset`` (per band, or per pixel and band): the pairs' level offset C - F
    (``PairTrust.level``), which the fusion carries to t2 in full (``P - C2`` holds
    ``-offset``); the detail moves with the trust, the offset only as far as it is
    ``carried`` (``offset x PairTrust.offset_transfer``) and trusted: a sensor offset
    measured at t1 holds at t2 over days to weeks (kranj, cia: daily products), while
    a composite's, a season's view and sun angles' offset does not (hubei_ndvi: its
    16-day NDVI composites are 0.066 above Landsat in April, 0.063 below in December)."""
    # in place on one temporary (a window of a two-pair date held six), same arithmetic
    blended = (prediction - c2).add_(offset).mul_(trust_field).add_(c2)
    return blended.sub_(trust_field * carried)


def pair_weights(w, first: TileTrust, second: TileTrust, weights: Sequence[float]):
    """The per-pixel weight of the first of two predictions: the coarse-agreement weight
    ``w`` times each pair's local consistency and scene-wide weight (0 = dropped)."""
    a = w * first.consistency * weights[0]
    b = (1.0 - w) * second.consistency * weights[1]
    total = a + b
    return torch.where(total > 1e-12, a / total.clamp_min(1e-12), w)


def expected_error(prediction, pairs: Sequence, c2, biases: Sequence, noises: Sequence,
                   weight, s: int, scale: float = UNCERTAINTY_SCALE):
    """The expected absolute error of ``prediction`` (bands, h, w), per pixel and band:
    ``scale x sqrt(miss^2 / 2 + texture^2 + change^2 + noise x coarse^2 + departure^2)``, the
    quadratic sum of what can go wrong where:

    - ``miss``: the local RMS (a coarse pixel wide) of ``F1 - C1 - bias``, the fine detail
      the coarse image missed at t1: what C2 misses at t2, and the error of any prediction
      where the scene's detail changed;
    - ``texture``: the local standard deviation (3 x 3) of F1: edges and small objects,
      where a shift, a change or a wrong class costs most;
    - ``change``: the local RMS (half a coarse pixel) of the coarse change ``C2 - C1`` minus
      its mean over a coarse pixel: where the change itself varies within a coarse pixel,
      the fusion must guess how it is distributed;
    - ``coarse``: the local RMS (half a coarse pixel) of the coarse change ``C2 - C1`` itself,
      weighted by ``noise`` (``PairTrust.coarse_noise``, per band: 0 when C1 is the exact
      block mean of F1, 1 for a real coarse sensor): a real sensor's change carries its own
      errors (noise, geolocation, view angles) in proportion to its size, and the fusion
      spreads them over the fine pixels;
    - ``departure``: the local RMS (3 x 3) of the prediction minus ``F1 + (C2 - C1)``: how
      far the fusion moved from the trivial answer (where its unmixing, residual
      distribution or trust rule act, it can be wrong).

    ``pairs``: (F, C) of each pair, ``biases`` their scene-wide C - F per band, ``noises``
    their ``coarse_noise``, ``weight`` the per-pixel weight of the first pair (two pairs).
    The terms and ``scale`` were chosen on cia and lgc_flood (``benchmarks/trust.py``: rank
    correlation with the real error, 60-80 % of the real errors below the expected one)."""
    valid = stfnet_fields.all_finite(prediction)

    def local_mean(x, radius):
        # over the finite values only: a tile's halo may hold no prediction
        finite = torch.isfinite(x)
        return (stfnet_fields.box_sum(torch.where(finite, x, 0.0), radius)
                / stfnet_fields.box_sum(finite.float(), radius).clamp_min(1.0))

    def local_ms(x, radius):
        return local_mean(x * x, radius)

    half = max(1, s // 2)
    squares, trivial = 0.0, 0.0
    shares = [weight, 1.0 - weight] if len(pairs) > 1 else [1.0]
    for (f, c), bias, noise, share in zip(pairs, biases, noises, shares):
        change = c2 - c
        squares = squares + share * (
            0.5 * local_ms(f - c + bias[:, None, None], half)
            + local_ms(f - local_mean(f, 1), 1)
            + local_ms(change - local_mean(change, s), half)
            + noise[:, None, None] * local_ms(change, half))
        trivial = trivial + share * (f + change)
    squares = squares + local_ms(prediction - trivial, 1)
    return torch.where(valid, scale * squares.sqrt(), float("nan"))


def _ranks(x: np.ndarray) -> np.ndarray:
    r = np.empty(len(x))
    r[np.argsort(x, kind="stable")] = np.arange(len(x))
    return r


def uncertainty_scores(prediction: np.ndarray, predicted_error: np.ndarray,
                       reference: np.ndarray) -> dict:
    """How well a predicted absolute error matches the real one: Spearman rank correlation
    over all valid pixels and bands (and the mean of the per-band values), the share of
    pixel-band values whose real error is below the predicted one, and both means."""
    valid = (np.isfinite(prediction).all(0) & np.isfinite(reference).all(0)
             & np.isfinite(predicted_error).all(0))
    err = np.abs(prediction - reference)[:, valid]
    u = predicted_error[:, valid]
    if err.size < 2:
        return {}
    spearman = lambda a, b: float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])  # noqa: E731
    return {"spearman": spearman(u.ravel(), err.ravel()),
            "spearman_per_band": float(np.mean([spearman(a, b) for a, b in zip(u, err)])),
            "share_below": float(np.mean(err < u)),
            "mean_predicted": float(u.mean()), "mean_actual": float(err.mean())}


def uncertainty_summary(output: str, uncertainty: str, reference: Optional[str] = None,
                        max_side: int = SUMMARY_WINDOW) -> dict:
    """Report summary of an UNCERTAINTY raster (its central window of at most ``max_side``
    pixels a side): mean expected error per band and, with a reference, ``uncertainty_scores``."""
    from . import raster
    grid = raster.raster_info(output).grid
    w, h = min(max_side, grid.width), min(max_side, grid.height)
    window = ((grid.width - w) // 2, (grid.height - h) // 2, w, h)
    u = raster.read_window(uncertainty, *window)
    summary = {"mean_expected_error_per_band": [round(float(np.nanmean(b)), 5) for b in u]}
    if reference:
        scores = uncertainty_scores(raster.read_window(output, *window), u,
                                    raster.read_window(reference, *window))
        summary.update({k: round(v, 4) for k, v in scores.items()})
    return summary
