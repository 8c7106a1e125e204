"""FSDAF (Zhu et al. 2016): Flexible Spatiotemporal DAta Fusion, one fine/coarse pair.

Steps (names as in the paper):

1. classify the fine image at t1 without supervision (seeded k-means on a deterministic
   subsample; every pixel takes the nearest class centre);
2. class fractions, and mean F1, C1, C2 per coarse pixel: blocks of ``scale_ratio`` x
   ``scale_ratio`` fine pixels aligned to the image grid (not to tiles);
3. class-level temporal change by least squares unmixing of the coarse change over the
   purest coarse pixels of every class (10-90 % of their changes), constrained to the
   range of the coarse change (min - std, max + std);
4. temporal prediction ``F2_TP = F1 + change(class)``;
5. thin-plate-spline prediction of C2 at fine resolution ``F2_SP``: a TPS fitted, for every
   coarse pixel, on the coarse pixel centres of its (2n+1) x (2n+1) neighbourhood;
6. residual ``R = dC - mean(F2_TP - F1)`` per coarse pixel, distributed to its fine pixels
   with weights mixing the TPS error (homogeneous pixels, homogeneity index HI = share of
   same-class pixels around the pixel) and ``R`` itself (heterogeneous pixels), so that the
   block mean of the distributed residual is ``R``;
7. final prediction: ``F1 + sum(w * change)`` over the ``similar_pixels`` pixels most
   similar to the centre in the window (relative spectral difference, all bands within
   ``std * 2 / classes``), weighted by the inverse of ``(1 + d/w) * (similarity + 1)``.

Differences from the public FSDAF Python code (same results within a few %, see
benchmarks/accuracy_real_data.py): seeded k-means instead of ISODATA; the class changes and
thresholds are global (the original recomputes them per block of 30x30 coarse pixels); a
local TPS per coarse pixel instead of one radial-basis interpolation per block; default
window 21 (the original's 41 is available: it was not more accurate on the benchmark data
and costs 4x more); the unmixing is bounded as in the IDL original (the Python one is not).

Global state (``prepare``): class centres, class changes, similarity thresholds and the
allowed data range, from two strip-by-strip passes over the image (bounded memory). The rest is
local: ``predict_tile`` computes any window given a halo of ``halo(state)`` pixels, the
window starting on the coarse-pixel grid (a multiple of ``tile_multiple(state)``). A fusion
method of ``core.methods`` (one pair only).
"""
from dataclasses import dataclass
from typing import Callable, ClassVar, Optional, Tuple

import numpy as np

from . import box_filters, methods, raster, tiling
from . import moving_window as common
from .errors import InputError
from .kmeans import kmeans

__all__ = ["FsdafParams", "FsdafState", "halo", "tile_multiple", "prepare", "predict_tile",
           "classify", "bounded_lstsq"]

CHUNK = 128  # output pixels per side (at most) of the chunks of the similar-pixel search
# torch's top-k picks the similar pixels about 40 ms faster per chunk than numpy's
# argpartition, but importing torch takes about 1.5 s: below this many pixels it does not pay
TORCH_SELECTION_MIN_PIXELS = 600_000
PREPARE_SHARE = 0.1  # of a run's progress


@dataclass(frozen=True)
class FsdafParams:
    scale_ratio: float = 16.0       # coarse pixel size / fine pixel size (rounded)
    classes: int = 4                # k-means classes of the fine image at t1
    window: int = 21                # similar-pixel window, fine pixels (odd; original: 41)
    similar_pixels: int = 20        # number of similar pixels used per fine pixel
    pure_pixels: int = 100          # purest coarse pixels per class for the unmixing
    tps_radius: int = 2             # TPS neighbourhood: (2n+1)^2 coarse pixels
    hi_window: Optional[int] = None  # homogeneity-index window (odd); None: ``window``
    min_value: float = 0.0          # allowed data range (reflectance)
    max_value: float = 1.0
    sample_pixels: int = 50_000     # k-means subsample size
    kmeans_iterations: int = 30
    seed: int = 0

    def __post_init__(self):
        if self.window < 1 or self.window % 2 == 0:
            raise ValueError(f"window must be a positive odd number, got {self.window}")
        if self.hi_window is not None and (self.hi_window < 1 or self.hi_window % 2 == 0):
            raise ValueError(f"hi_window must be a positive odd number, got {self.hi_window}")
        if self.scale_ratio < 1:
            raise ValueError(f"scale_ratio must be >= 1, got {self.scale_ratio}")
        if self.classes < 1 or self.similar_pixels < 1:
            raise ValueError("classes and similar_pixels must be >= 1")

    @property
    def block(self) -> int:
        return max(1, int(round(self.scale_ratio)))

    @property
    def radius(self) -> int:
        return self.window // 2

    @property
    def hi_radius(self) -> int:
        return (self.hi_window if self.hi_window is not None else self.window) // 2


@dataclass
class FsdafState:
    METHOD: ClassVar[str] = "fsdaf"
    params: FsdafParams
    centers: np.ndarray        # (classes, bands) k-means centres
    class_change: np.ndarray   # (bands, classes) change of every class, t1 -> t2
    thresholds: np.ndarray     # (bands,) similarity thresholds std * 2 / classes
    min_allow: np.ndarray      # (bands,) allowed range of F2 after the residual step
    max_allow: np.ndarray
    torch_selection: bool = False   # similar pixels picked by torch (big image, torch imports)


def halo(state: FsdafState) -> int:
    """Halo (a multiple of the block size) that makes tiles independent."""
    params = state.params
    s = params.block
    need = params.radius + max((params.tps_radius + 1) * s, s + params.hi_radius)
    return -(-need // s) * s


def tile_multiple(state: FsdafState) -> int:
    """Windows start on the coarse-pixel grid."""
    return state.params.block


# ---- classification -----------------------------------------------------------------

def classify(image: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Nearest class centre of every pixel of (bands, rows, cols); -1 where invalid."""
    best = np.full(image.shape[1:], np.inf, np.float32)
    labels = np.full(image.shape[1:], -1, np.int16)
    for j, c in enumerate(centers):
        d = ((image - c[:, None, None]) ** 2).sum(0)
        closer = d < best
        best[closer] = d[closer]
        labels[closer] = j
    return labels


# ---- block (coarse pixel) helpers ------------------------------------------------------

def _to_blocks(array: np.ndarray, s: int, oy: int, ox: int, fill=np.nan) -> np.ndarray:
    """Pad (..., H, W) with ``fill`` so that global block edges fall on multiples of s
    (``oy, ox`` = origin modulo s) and reshape to (..., nby, s, nbx, s)."""
    h, w = array.shape[-2:]
    nby, nbx = -(-(h + oy) // s), -(-(w + ox) // s)
    widths = [(0, 0)] * (array.ndim - 2) + [(oy, nby * s - h - oy), (ox, nbx * s - w - ox)]
    padded = np.pad(array, widths, constant_values=fill)
    return padded.reshape(array.shape[:-2] + (nby, s, nbx, s))


def _from_blocks(blocks: np.ndarray, h: int, w: int, oy: int, ox: int) -> np.ndarray:
    shape = blocks.shape
    full = blocks.reshape(shape[:-4] + (shape[-4] * shape[-3], shape[-2] * shape[-1]))
    return full[..., oy:oy + h, ox:ox + w]


def _block_expand(values: np.ndarray, s: int) -> np.ndarray:
    """(..., nby, nbx) -> (..., nby, s, nbx, s) broadcast view."""
    v = values[..., :, None, :, None]
    return np.broadcast_to(v, values.shape[:-2] + (values.shape[-2], s, values.shape[-1], s))


def _block_mean(blocks: np.ndarray) -> np.ndarray:
    """Mean over the finite values of every block of (..., nby, s, nbx, s); NaN if none."""
    finite = np.isfinite(blocks)
    total = np.where(finite, blocks, 0).sum(axis=(-3, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / finite.sum(axis=(-3, -1))).astype(blocks.dtype)


# ---- prepare ---------------------------------------------------------------------------

def prepare(pairs, coarse_t2, params: FsdafParams = FsdafParams(),
            progress: Callable[[float], None] = tiling.no_progress,
            is_canceled: Callable[[], bool] = tiling.never_canceled, log=None) -> FsdafState:
    """Global state from the sources of one pair and C2 (two strip-by-strip passes)."""
    if len(pairs) != 1:
        raise InputError("FINE_T3", "FSDAF takes one fine/coarse pair: leave the second "
                                    "pair empty")
    p = params
    s = p.block
    sources = [pairs[0][0], pairs[0][1], coarse_t2]
    height, width = coarse_t2.height, coarse_t2.width
    stride = common.subsample_stride(height, width, p.sample_pixels)
    rows = max(s, (common.STRIP_ROWS // s) * s)

    # pass 1: band moments of F1 and a strided subsample for the classification
    moments, samples = None, []
    data = raster.DataCheck(methods.input_names(1))
    for y0, y1, (a1, b1, b2) in common.strips(sources, rows):
        tiling.check_canceled(is_canceled)
        data.add(a1, b1, b2)
        valid = common.valid_mask(a1, b1, b2)
        if moments is None:
            moments = common.BandMoments(a1.shape[0])
        moments.add(a1, valid)
        first = (-y0) % stride
        sub_valid = valid[first::stride, ::stride]
        samples.append(a1[:, first::stride, ::stride][:, sub_valid].T)
        progress(0.4 * y1 / height)
    data.check()
    samples = np.concatenate(samples)
    centers = kmeans(samples, p.classes, p.kmeans_iterations, p.seed, is_canceled)
    centers = centers[np.argsort(centers[:, 0], kind="stable")].astype(np.float32)
    k = centers.shape[0]
    nb = moments.s1.shape[0]

    # pass 2: per coarse pixel class counts and band sums; class ranges of F1; range of C2
    nby, nbx = -(-height // s), -(-width // s)
    counts = np.zeros((k, nby, nbx), np.float64)
    inside = np.zeros((nby, nbx), np.float64)
    sums = np.zeros((3, nb, nby, nbx), np.float64)
    class_min = np.full((nb, k), np.inf)
    class_max = np.full((nb, k), -np.inf)
    c2_min = np.full(nb, np.inf)
    c2_max = np.full(nb, -np.inf)
    for y0, y1, (a1, b1, b2) in common.strips(sources, rows):
        tiling.check_canceled(is_canceled)
        valid = common.valid_mask(a1, b1, b2)
        labels = np.where(valid, classify(np.nan_to_num(a1), centers), -1)
        by0 = y0 // s
        one = np.ones(valid.shape, np.float64)
        inside_b = _to_blocks(one, s, 0, 0, 0.0).sum(axis=(-3, -1))
        inside[by0:by0 + inside_b.shape[0]] += inside_b
        for j in range(k):
            cnt = _to_blocks((labels == j).astype(np.float64), s, 0, 0, 0.0).sum(axis=(-3, -1))
            counts[j, by0:by0 + cnt.shape[0]] += cnt
            if (labels == j).any():
                vals = a1[:, labels == j]
                class_min[:, j] = np.minimum(class_min[:, j], vals.min(1))
                class_max[:, j] = np.maximum(class_max[:, j], vals.max(1))
        for i, img in enumerate((a1, b1, b2)):
            z = np.where(valid, img, 0).astype(np.float64)
            sm = _to_blocks(z, s, 0, 0, 0.0).sum(axis=(-3, -1))
            sums[i, :, by0:by0 + sm.shape[1]] += sm
        if valid.any():
            c2_min = np.minimum(c2_min, b2[:, valid].min(1))
            c2_max = np.maximum(c2_max, b2[:, valid].max(1))
        progress(0.4 + 0.55 * y1 / height)

    n_valid = counts.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / n_valid
        fractions = counts / n_valid
    # coarse pixels fully valid (within the image) and at least half inside it
    usable = (n_valid == inside) & (inside >= 0.5 * s * s)
    class_change = _unmix(fractions, means[2] - means[1], usable, p.pure_pixels)

    thresholds = (moments.std * 2.0 / k).astype(np.float32)
    with np.errstate(invalid="ignore"):
        l2_min = np.nanmin(np.where(np.isfinite(class_min), class_min + class_change, np.nan), 1)
        l2_max = np.nanmax(np.where(np.isfinite(class_max), class_max + class_change, np.nan), 1)
    min_allow = np.maximum(np.minimum(c2_min, l2_min), p.min_value).astype(np.float32)
    max_allow = np.minimum(np.maximum(c2_max, l2_max), p.max_value).astype(np.float32)
    progress(1.0)
    return FsdafState(p, centers, class_change.astype(np.float32), thresholds,
                      min_allow, max_allow, torch_selection=_torch_pays(height * width))


def _torch_pays(pixels: int) -> bool:
    """Whether the similar-pixel selection of an image of ``pixels`` runs on torch: when the
    image is big enough to repay its import and it imports (a missing or broken torch
    leaves the selection to numpy). Decided once per run, so every tile (in process or on a
    worker) selects alike."""
    if pixels < TORCH_SELECTION_MIN_PIXELS:
        return False
    import importlib
    try:
        importlib.import_module("torch")
    except ImportError:
        return False
    return True


def _percentile_index(n: int, q: float) -> int:
    return int(np.clip(np.floor(q * n), 0, n - 1))


def _unmix(fractions: np.ndarray, change: np.ndarray, usable: np.ndarray,
           pure_pixels: int) -> np.ndarray:
    """Class change (bands, classes) by bounded least squares over the purest coarse
    pixels of every class, keeping the 10-90 % of their coarse changes."""
    k = fractions.shape[0]
    nb = change.shape[0]
    frac = fractions[:, usable].T            # (n, k)
    dc = change[:, usable]                   # (nb, n)
    result = np.zeros((nb, k))
    if frac.shape[0] == 0:
        return result
    for b in range(nb):
        lo = dc[b].min() - dc[b].std()
        hi = dc[b].max() + dc[b].std()
        xs, ys = [], []
        for j in range(k):
            order = np.argsort(-frac[:, j], kind="stable")
            order = order[frac[order, j] > 0.01][:pure_pixels]
            if not len(order):
                continue
            y = dc[b, order]
            srt = np.sort(y, kind="stable")
            keep = (y >= srt[_percentile_index(len(y), 0.1)]) & \
                   (y <= srt[_percentile_index(len(y), 0.9)])
            xs.append(frac[order[keep]])
            ys.append(y[keep])
        if not xs:
            result[b] = np.clip(dc[b].mean(), lo, hi)
            continue
        result[b] = bounded_lstsq(np.concatenate(xs), np.concatenate(ys), lo, hi)
    return result


def bounded_lstsq(x: np.ndarray, y: np.ndarray, lo: float, hi: float,
                  sweeps: int = 500) -> np.ndarray:
    """min ||x a - y|| subject to lo <= a <= hi (projected coordinate descent from the
    clipped unconstrained solution; exact for the small systems of the unmixing)."""
    a = np.linalg.lstsq(x, y, rcond=None)[0]
    if np.all((a >= lo) & (a <= hi)):
        return a
    a = np.clip(a, lo, hi)
    q = x.T @ x
    g = x.T @ y
    for _ in range(sweeps):
        previous = a.copy()
        for j in range(len(a)):
            if q[j, j] > 1e-12:
                a[j] = np.clip(a[j] - (q[j] @ a - g[j]) / q[j, j], lo, hi)
        if np.max(np.abs(a - previous)) < 1e-10:
            break
    return a


# ---- thin plate spline -----------------------------------------------------------------

def _tps_kernel(r2: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r2 > 0, 0.5 * r2 * np.log(r2), 0.0)   # r^2 log r


def _tps_predict(values: np.ndarray, cy: np.ndarray, cx: np.ndarray, s: int,
                 n: int) -> np.ndarray:
    """Local TPS interpolation of block values (bands, nby, nbx) with centres (cy, cx) in
    pixels relative to each block's nominal centre (NaN: missing). Returns the fine field as
    blocks (bands, nby, s, nbx, s)."""
    nb, nby, nbx = values.shape
    size = 2 * n + 1
    m = size * size

    def neighbours(a, fill):
        pad = np.pad(a, [(0, 0)] * (a.ndim - 2) + [(n, n), (n, n)], constant_values=fill)
        win = np.lib.stride_tricks.sliding_window_view(pad, (size, size), axis=(-2, -1))
        return win.reshape(a.shape[:-2] + (nby, nbx, m))

    # neighbour coordinates in block units relative to the block's nominal centre
    offy = np.repeat(np.arange(-n, n + 1), size).astype(np.float64)
    offx = np.tile(np.arange(-n, n + 1), size).astype(np.float64)
    py = neighbours(cy, np.nan) / s + offy          # (nby, nbx, m)
    px = neighbours(cx, np.nan) / s + offx
    vals = neighbours(values.astype(np.float64), np.nan)   # (nb, nby, nbx, m)
    ok = np.isfinite(py) & np.isfinite(px) & np.isfinite(vals).all(0)
    enough = ok.sum(-1) >= 3
    # regular blocks (all neighbours complete): one shared system and evaluation kernel
    regular = ok.all(-1) & (py == offy).all(-1) & (px == offx).all(-1)
    t = (np.arange(s) - (s - 1) / 2.0) / s
    qy, qx = t[:, None], t[None, :]                            # (s, 1), (1, s)
    field = np.empty((nb, nby, nbx, s, s), np.float64)
    if regular.any():
        op = _tps_operator(n, s)                                # (s*s, m)
        v = vals[:, regular]                                    # (nb, nr, m)
        field[:, regular] = np.einsum("pm,bnm->bnp", op, v).reshape(nb, -1, s, s)
    irregular = ~regular & enough
    if irregular.any():
        field[:, irregular] = _tps_general(py[irregular], px[irregular], ok[irregular],
                                           vals[:, irregular], qy, qx)
    own = np.broadcast_to(values[:, :, :, None, None], field.shape)
    field = np.where(enough[None, :, :, None, None], field, own)
    return np.transpose(field, (0, 1, 3, 2, 4)).astype(np.float32)   # (nb, nby, s, nbx, s)


_OPERATORS = {}


def _tps_operator(n: int, s: int) -> np.ndarray:
    """Linear map from the (2n+1)^2 values of a complete regular neighbourhood to the TPS
    interpolation at the s x s fine pixels of its central block."""
    key = (n, s)
    if key not in _OPERATORS:
        size = 2 * n + 1
        m = size * size
        py = np.repeat(np.arange(-n, n + 1), size).astype(np.float64)
        px = np.tile(np.arange(-n, n + 1), size).astype(np.float64)
        t = (np.arange(s) - (s - 1) / 2.0) / s
        qy, qx = t[:, None], t[None, :]
        ok = np.ones(m, bool)
        eye = np.eye(m)
        op = _tps_general(py[None], px[None], ok[None], eye[:, None, :], qy, qx)  # (m,1,s,s)
        _OPERATORS[key] = op[:, 0].reshape(m, s * s).T.copy()
    return _OPERATORS[key]


def _tps_general(py, px, ok, vals, qy, qx) -> np.ndarray:
    """TPS through (py, px, vals) per block (n blocks, m points; ``ok`` marks the points
    used), evaluated at (qy, qx). vals: (nb, n, m). Returns (nb, n, s, s)."""
    nblk, m = py.shape
    nb = vals.shape[0]
    py, px = np.where(ok, py, 0.0), np.where(ok, px, 0.0)
    vals = np.where(ok, vals, 0.0)
    a = np.zeros((nblk, m + 3, m + 3))
    r2 = (py[:, :, None] - py[:, None, :]) ** 2 + (px[:, :, None] - px[:, None, :]) ** 2
    a[:, :m, :m] = _tps_kernel(r2) * (ok[:, :, None] & ok[:, None, :]) \
        + np.eye(m) * np.where(ok, 1e-9, 1.0)[:, None, :]
    okf = ok.astype(np.float64)
    poly = np.stack([okf, px * okf, py * okf], -1)            # (n, m, 3)
    a[:, :m, m:] = poly
    a[:, m:, :m] = np.swapaxes(poly, -1, -2)
    a[:, m:, m:] = -1e-9 * np.eye(3)
    rhs = np.zeros((nblk, m + 3, nb))
    rhs[:, :m, :] = np.moveaxis(vals, 0, -1)
    coef = np.linalg.solve(a, rhs)                             # (n, m+3, nb)
    d2 = (qy[None, :, :, None] - py[:, None, None, :]) ** 2 + \
         (qx[None, :, :, None] - px[:, None, None, :]) ** 2     # (n, s, s, m)
    k_eval = _tps_kernel(d2) * ok[:, None, None, :]
    field = np.einsum("nijm,nmb->bnij", k_eval, coef[:, :m, :], optimize=True)
    c0 = coef[:, m, :].T[:, :, None, None]
    c1 = coef[:, m + 1, :].T[:, :, None, None]
    c2 = coef[:, m + 2, :].T[:, :, None, None]
    return field + c0 + c1 * qx + c2 * qy


# ---- tile prediction -------------------------------------------------------------------

def predict_tile(state: FsdafState, window,
                 is_canceled: Optional[Callable[[], bool]] = None) -> np.ndarray:
    """The fine image at t2 over a ``methods.TileWindow`` that starts on the coarse-pixel
    grid (``window.margin`` pixels on each side left NaN)."""
    (f1, c1), = window.pairs
    return predict_window(state, f1, c1, window.coarse_t2, margin=window.margin,
                          is_canceled=is_canceled)


def predict_window(state: FsdafState, f1, c1, c2, origin: Tuple[int, int] = (0, 0),
                   margin: int = 0,
                   is_canceled: Optional[Callable[[], bool]] = None) -> np.ndarray:
    """Predict the fine image at t2 over the window of the arrays.

    ``origin`` = global (column, row) of the window's first pixel (may be negative; only
    its value modulo the block size matters, for the coarse-pixel grid). Pixels closer than
    ``margin`` to the window edge are not computed (NaN). With ``margin >= halo(state)``
    and NaN outside the image, the result equals the untiled one.
    """
    p = state.params
    s = p.block
    f1, c1, c2 = map(common.as_float32, (f1, c1, c2))
    nb, height, width = common.check_shapes(f1, c1, c2)
    out = np.full((nb, height, width), np.nan, np.float32)
    if height - 2 * margin <= 0 or width - 2 * margin <= 0:
        return out
    valid = common.valid_mask(f1, c1, c2)
    f1 = np.where(valid, f1, np.nan)
    c1 = np.where(valid, c1, np.nan)
    c2 = np.where(valid, c2, np.nan)
    ox, oy = origin[0] % s, origin[1] % s

    # 1. classes; 4. temporal prediction
    labels = np.where(valid, classify(np.nan_to_num(f1), state.centers), -1)
    change_class = state.class_change[:, np.maximum(labels, 0)]
    l2_1 = f1 + change_class

    # 2. coarse pixels
    fb, c1b, c2b, l2b = (_to_blocks(a, s, oy, ox) for a in (f1, c1, c2, l2_1))
    mean_f1, mean_c1, mean_c2, mean_l2 = (_block_mean(a) for a in (fb, c1b, c2b, l2b))
    # 6. residual of every coarse pixel
    residual = (mean_c2 - mean_c1) - (mean_l2 - mean_f1)           # (nb, nby, nbx)

    # 5. TPS prediction of C2 from the coarse pixel centres
    vb = _to_blocks(np.where(valid, 1.0, np.nan).astype(np.float32), s, oy, ox)
    rel = np.arange(s, dtype=np.float32) - (s - 1) / 2.0
    cy = _block_mean(vb * rel[None, :, None, None])
    cx = _block_mean(vb * rel[None, None, None, :])
    tps = _tps_predict(mean_c2, cy, cx, s, p.tps_radius)          # blocks
    err_ho = tps - l2b                                             # TPS error

    # homogeneity index: share of same-class pixels among the valid ones around
    r_hi = p.hi_radius
    n_valid = box_filters.box_sum(valid, r_hi)
    same = np.zeros(valid.shape, np.int32)
    for j in range(state.centers.shape[0]):
        is_j = labels == j
        same = np.where(is_j, box_filters.box_sum(is_j, r_hi), same)
    with np.errstate(invalid="ignore", divide="ignore"):
        hi = np.where(valid, same / np.maximum(n_valid, 1), np.nan).astype(np.float32)
    hib = _to_blocks(hi, s, oy, ox)

    rb = _block_expand(residual, s)
    err_ho = np.where(np.sign(err_ho) * np.sign(rb) < 0, 0.0, np.abs(err_ho))
    with np.errstate(invalid="ignore"):
        wgt = err_ho * hib + np.abs(rb) * (1.0 - hib) + 1e-6
        wgt = wgt / _block_expand(_block_mean(wgt), s)
        wgt = np.where(wgt > 10, 1.0, wgt)
        wgt = wgt / _block_expand(_block_mean(wgt), s)
    f2_2 = l2b + wgt * rb
    f2_2 = np.clip(f2_2, state.min_allow[:, None, None, None, None],
                   state.max_allow[:, None, None, None, None])
    change = _from_blocks(f2_2, height, width, oy, ox) - f1          # NaN where invalid
    change = change.astype(np.float32)

    # 7. final prediction with similar pixels
    _blend(out, f1, c1, c2, change, state, margin, is_canceled)
    out[:, ~valid] = np.nan
    return out


def _blend(out, f1, c1, c2, change, state: FsdafState, margin: int, is_canceled) -> None:
    """Step 7: F1 + weighted change of the most similar pixels of the window."""
    p = state.params
    r = p.radius
    rw = float(max(r, 1))
    nb, height, width = f1.shape
    # similarity in units of the thresholds: candidate iff max_b |dG_b| < 1, and the
    # relative difference sum_b |dF_b| / F_b(centre) = sum_b |dG_b| * thr_b / F_b(centre)
    thr = np.maximum(state.thresholds, 1e-12).astype(np.float32)
    usable = np.isfinite(change).all(0)     # pixels without a change are no candidates
    cflat = np.pad(np.where(usable, change, 0), [(0, 0), (r, r), (r, r)]).reshape(nb, -1)
    row = width + 2 * r
    gpad = common.nan_pad(np.where(usable, f1 / thr[:, None, None], np.nan), r)
    offsets = common.window_offsets(r)
    n_off = len(offsets)
    k = min(p.similar_pixels, n_off)
    dist_factor = np.array([10.0 + d / rw for _, _, d in offsets], np.float32)
    off_flat = np.array([dy * row + dx for dy, dx, _ in offsets])
    inv_dist = np.array([1.0 / (1.0 + d / rw) for _, _, d in offsets], np.float32)
    centre_index = n_off // 2
    position = {(dy, dx): i for i, (dy, dx, _) in enumerate(offsets)}
    pairs = [(i, position[(-dy, -dx)]) for i, (dy, dx, _) in enumerate(offsets)
             if dy > 0 or (dy == 0 and dx > 0)]
    torch = None
    if state.torch_selection:
        import torch
    h0, h1, w0, w1 = margin, height - margin, margin, width - margin
    # chunks of at most CHUNK^2 pixels whose key arrays stay under about 64 MB
    size = int(min(CHUNK, max(16, np.sqrt(16e6 / n_off))))

    def chunk(y0, y1, x0, x1):
        cy0, cy1, cx0, cx1 = h0 + y0 + r, h0 + y1 + r, w0 + x0 + r, w0 + x1 + r
        gc = gpad[:, cy0:cy1, cx0:cx1]
        fc = f1[:, cy0 - r:cy1 - r, cx0 - r:cx1 - r]
        shape = gc.shape[1:]
        u = (thr[:, None, None] / np.maximum(fc, 1e-4)).astype(np.float32)
        keys = np.empty((n_off,) + shape, np.float32)
        hh, ww = shape
        # |dG| is symmetric: the differences computed for offset o over the chunk grown by
        # o also give those of -o, so each pair of opposite offsets is differenced once
        ext = np.empty((nb, hh + r, ww + 2 * r), np.float32)
        dmax_ext = np.empty((hh + r, ww + 2 * r), np.float32)
        sim = np.empty(shape, np.float32)
        ok = np.empty(shape, bool)
        for o, o_neg in pairs:
            dy, dx = offsets[o][0], offsets[o][1]          # dy > 0 or (dy == 0, dx > 0)
            ey0, ex0 = cy0 - dy, cx0 - max(dx, 0)          # grown region, padded coords
            eh, ew = hh + dy, ww + abs(dx)
            e = ext[:, :eh, :ew]
            dm = dmax_ext[:eh, :ew]
            np.subtract(gpad[:, ey0 + dy:ey0 + dy + eh, ex0 + dx:ex0 + dx + ew],
                        gpad[:, ey0:ey0 + eh, ex0:ex0 + ew], out=e)
            np.abs(e, out=e)
            if nb > 1:
                np.maximum(e[0], e[1], out=dm)
                for b in range(2, nb):
                    np.maximum(dm, e[b], out=dm)
            else:
                dm[...] = e[0]
            for index, (py, px) in ((o, (dy, cx0 - ex0)), (o_neg, (0, cx0 - ex0 - dx))):
                # offset o at p: e[p]; offset -o at p: e[p - o]
                view = (slice(py, py + hh), slice(px, px + ww))
                np.einsum("bhw,bhw->hw", e[(slice(None),) + view], u, out=sim)
                _key(keys[index], sim, dm[view], dist_factor[index], ok)
        # the centre: always a candidate when valid
        keys[centre_index] = np.where(np.isfinite(gc).all(0), 1e-5 * dist_factor[centre_index],
                                      np.inf)
        index, values = _smallest(keys.reshape(n_off, -1), k, torch)
        values = values.reshape((k,) + shape)
        index = index.reshape((k,) + shape)
        chosen = np.isfinite(values)
        sim_sel = values / dist_factor[index] - np.float32(1e-5)
        wgt = np.where(chosen, inv_dist[index] / (sim_sel + 1.0), 0.0).astype(np.float32)
        wgt /= np.maximum(wgt.sum(0), np.float32(1e-30))
        # the chosen pixels' places in the flattened padded window (one index, not two);
        # the others have a zero weight and read a finite change
        at = (np.arange(cy0, cy1)[:, None] * row + np.arange(cx0, cx1)[None, :]) \
            + off_flat[index]
        for b in range(nb):
            ch = cflat[b].take(at)
            pred = fc[b] + (wgt * ch).sum(0)
            bad = (pred < p.min_value) | (pred > p.max_value)
            if bad.any():
                alt = np.clip(fc[b] + c2[b, cy0 - r:cy1 - r, cx0 - r:cx1 - r]
                              - c1[b, cy0 - r:cy1 - r, cx0 - r:cx1 - r],
                              p.min_value, p.max_value)
                pred = np.where(bad, alt, pred)
            out[b, cy0 - r:cy1 - r, cx0 - r:cx1 - r] = pred

    common.run_chunks(chunk, h1 - h0, w1 - w0, size, is_canceled)


def _smallest(keys: np.ndarray, k: int, torch) -> Tuple[np.ndarray, np.ndarray]:
    """Indices and values (k, pixels) of the k smallest finite ``keys`` (offsets, pixels)
    of every pixel, in any order; a pixel with at most k finite keys takes them all first,
    in offset order, then infinite ones."""
    finite = np.isfinite(keys)
    many = finite.sum(0) > k
    if many.all():          # the usual case: no column gathers
        return _k_smallest(keys, k, torch)
    index = np.empty((k, keys.shape[1]), np.int64)
    index[:, ~many] = np.argsort(~finite[:, ~many], axis=0, kind="stable")[:k]
    if many.any():
        index[:, many] = _k_smallest(keys[:, many], k, torch)[0]
    return index, np.take_along_axis(keys, index, 0)


def _k_smallest(keys: np.ndarray, k: int, torch) -> Tuple[np.ndarray, np.ndarray]:
    if torch is not None:
        values, index = torch.topk(torch.from_numpy(keys), k, dim=0, largest=False,
                                   sorted=False)
        return index.numpy(), values.numpy()
    by_pixel = np.ascontiguousarray(keys.T)    # a pixel's keys contiguous: 25 % faster
    index = np.argpartition(by_pixel, k - 1, axis=1)[:, :k]
    return index.T, np.take_along_axis(by_pixel, index, 1).T


def _key(out, sim, dmax, factor, ok) -> None:
    """Ordering key (sim + 1e-5) * (10 + d/w) of a candidate, inf if not one (any band
    beyond its threshold or invalid)."""
    np.less(dmax, 1.0, out=ok)
    sim += np.float32(1e-5)
    np.multiply(sim, factor, out=out)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(out, ok, out=out)        # x / False = inf (NaN stays NaN: no candidate)

