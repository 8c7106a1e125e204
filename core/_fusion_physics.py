"""Deterministic building blocks of the fusion models (numpy only, local, NaN-aware).

Every filter here is a finite window, and pixels outside the array or NaN are treated as
absent (normalised convolution), so a tile read with a large enough halo gives exactly the
same core as the whole image (see ``physics_radius``).

Pieces:
- ``box_mean``: NaN-aware moving average (cumulative sums in float64, O(1) per pixel).
- ``kmeans``: deterministic k-means on a pixel sample (``prepare`` step, global).
- ``unmix_change``: FSDAF-style class-wise unmixing of the coarse change in a moving window
  (ridge-regularised towards the scene-wide class changes), plus the coarse residual.
- ``guided_filter``: edge-aware smoothing of a field guided by the fine image.
"""
from typing import Optional, Tuple

import numpy as np


def _box_sum(x: np.ndarray, radius: int) -> np.ndarray:
    """Sum over a (2r+1)^2 window with zero padding, last two axes, float64."""
    if radius <= 0:
        return x.astype(np.float64)
    pad = [(0, 0)] * (x.ndim - 2) + [(radius + 1, radius), (radius + 1, radius)]
    c = np.pad(x.astype(np.float64), pad)
    c = np.cumsum(np.cumsum(c, axis=-2), axis=-1)
    w = 2 * radius + 1
    return c[..., w:, w:] - c[..., :-w, w:] - c[..., w:, :-w] + c[..., :-w, :-w]


def box_mean(x: np.ndarray, valid: np.ndarray, radius: int,
             count: Optional[np.ndarray] = None) -> np.ndarray:
    """Mean of ``x`` over valid pixels of a (2r+1)^2 window (NaN where none is valid)."""
    if count is None:
        count = _box_sum(valid.astype(np.float64), radius)
    s = _box_sum(np.where(valid, x, 0.0), radius)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = s / count
    return np.where(count > 0.5, out, np.nan)


def kmeans(samples: np.ndarray, k: int, seed: int = 0, iterations: int = 25) -> np.ndarray:
    """Deterministic k-means (k-means++ seeding) on ``samples`` (n, d); returns (k, d)."""
    rng = np.random.default_rng(seed)
    x = samples.astype(np.float64)
    k = max(1, min(k, len(x)))
    centres = [x[rng.integers(len(x))]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:
            centres.append(x[rng.integers(len(x))])
        else:
            centres.append(x[rng.choice(len(x), p=d2 / total)])
        d2 = np.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
    c = np.array(centres)
    for _ in range(iterations):
        lab = assign(x, c)
        new = np.array([x[lab == j].mean(0) if np.any(lab == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return c


def assign(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Nearest centre index for rows of ``x`` (n, d)."""
    d = (x ** 2).sum(1)[:, None] - 2 * x @ centres.T + (centres ** 2).sum(1)[None]
    return np.argmin(d, axis=1)


def class_map(f1: np.ndarray, centres: np.ndarray, mean: np.ndarray, std: np.ndarray,
              valid: np.ndarray) -> np.ndarray:
    """One-hot class membership (k, rows, cols) of the fine image (0 where invalid)."""
    b, h, w = f1.shape
    x = ((np.nan_to_num(f1.reshape(b, -1).T) - mean) / std).astype(np.float64)
    lab = assign(x, centres).reshape(h, w)
    onehot = np.stack([(lab == j) & valid for j in range(len(centres))]).astype(np.float64)
    return onehot


def footprint_radius(ratio: float) -> int:
    """Half-width (fine pixels) of a window about one coarse pixel wide."""
    return max(1, int(round(ratio / 2.0)))


def unmix_change(onehot: np.ndarray, dc: np.ndarray, valid: np.ndarray, ratio: float,
                 global_change: np.ndarray, window: float = 5.0,
                 ridge: float = 0.1) -> np.ndarray:
    """Class-wise unmixing of the coarse change ``dc`` (bands, rows, cols).

    Fractions of each class in a coarse footprint around every pixel explain ``dc`` as
    a fraction-weighted sum of class changes; the class changes are fitted by ridge least
    squares in a moving window of ``window`` coarse pixels, shrunk towards the scene-wide
    ``global_change`` (k, bands). The result is each pixel's own class change plus the part
    of the coarse change the classes do not explain (the coarse residual).
    """
    k = onehot.shape[0]
    fr_r = footprint_radius(ratio)
    count_fp = _box_sum(valid.astype(np.float64), fr_r)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = _box_sum(onehot, fr_r) / count_fp
    frac = np.where(count_fp > 0.5, frac, 0.0)
    w_r = max(1, int(round(window * ratio / 2.0)))
    wvalid = valid.astype(np.float64)
    count = _box_sum(wvalid, w_r)
    count = np.maximum(count, 1.0)
    m = np.empty(onehot.shape[1:] + (k, k))
    for i in range(k):
        for j in range(i, k):
            m[..., i, j] = m[..., j, i] = _box_sum(frac[i] * frac[j] * wvalid, w_r) / count
    m += ridge * np.eye(k)
    dcz = np.where(valid, dc, 0.0).astype(np.float64)
    rhs = np.empty(onehot.shape[1:] + (k, dc.shape[0]))
    for i in range(k):
        rhs[..., i, :] = np.moveaxis(_box_sum(frac[i] * dcz, w_r) / count, 0, -1)
    rhs += ridge * global_change[None, None]
    sol = np.linalg.solve(m, rhs)                     # rows, cols, k, bands
    own = np.einsum("khw,hwkb->bhw", onehot, sol)
    explained = np.einsum("khw,hwkb->bhw", frac, sol)
    out = own + (dcz - explained)
    return np.where(valid, out, np.nan)


def global_class_change(onehot: np.ndarray, dc: np.ndarray, valid: np.ndarray,
                        ratio: float) -> Tuple[np.ndarray, np.ndarray]:
    """Normal equations (k,k) and (k,bands) of the scene-wide unmixing of ``dc``.

    Returned unsolved so that several windows of a large scene can be accumulated.
    """
    fr_r = footprint_radius(ratio)
    count_fp = _box_sum(valid.astype(np.float64), fr_r)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = _box_sum(onehot, fr_r) / count_fp
    frac = np.where(count_fp > 0.5, frac, 0.0)[:, valid]
    d = dc[:, valid].astype(np.float64)
    return frac @ frac.T, frac @ d.T


def guided_filter(guide: np.ndarray, field: np.ndarray, valid: np.ndarray, radius: int,
                  eps: float) -> np.ndarray:
    """Per-band guided filter (He et al.) of ``field`` with ``guide`` (same band count)."""
    count = _box_sum(valid.astype(np.float64), radius)
    g = np.where(valid, guide, 0.0).astype(np.float64)
    p = np.where(valid, field, 0.0).astype(np.float64)
    mg, mp = box_mean(g, valid, radius, count), box_mean(p, valid, radius, count)
    cov = box_mean(g * p, valid, radius, count) - mg * mp
    var = box_mean(g * g, valid, radius, count) - mg * mg
    a = cov / (var + eps)
    b = mp - a * mg
    a, b = np.nan_to_num(a), np.nan_to_num(b)
    out = box_mean(a, valid, radius, count) * g + box_mean(b, valid, radius, count)
    return np.where(valid, out, np.nan)


def physics_radius(ratio: float, window: float = 5.0) -> int:
    """How far (fine pixels) the deterministic prior reaches: the halo it needs."""
    fr_r = footprint_radius(ratio)
    w_r = max(1, int(round(window * ratio / 2.0)))
    g_r = max(1, int(round(ratio / 2.0)))
    # fractions -> window sums -> (own + residual) -> guided filter (two box passes)
    return fr_r + w_r + fr_r + 2 * g_r
