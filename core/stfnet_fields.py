"""Fast, tile-exact building blocks of the default fusion model (torch, float32, any device).

Everything works on one window (a tile plus its halo) whose global origin is a multiple of
the block size ``s`` (= the scale ratio, rounded): the coarse pixels are the ``s x s`` blocks
of that grid, so a tile sees the same blocks as the whole image. Pixels outside the image are
NaN (invalid) and every statistic is weighted by validity, so image borders and tile halos
behave alike (tiled == untiled).

Per pair (F1, C1) and the coarse image C2 the candidates of the fine change F2 - F1 are:

- ``dc``: the coarse change C2 - C1 itself (the F1 + dC baseline);
- ``gd``: ``dc`` smoothed by a guided filter with F1 as the guide (edges of F1 kept);
- ``gu``: class-wise unmixing of the coarse change on the block grid (k classes, a moving
  window of ``window`` x ``window`` blocks, ridge-shrunk towards the scene-wide class
  changes), the class changes interpolated bilinearly between block centres and read at
  each pixel's class, plus the interpolated unexplained block residual; guided-filtered;
- ``gf``: the FSDAF-style candidate: the same class changes (temporal prediction) plus the
  block residual distributed as FSDAF does (TPS error, here a bilinear interpolation of the
  C2 block means, on homogeneous pixels, the residual itself on heterogeneous ones, with a
  homogeneity index = share of same-class pixels in a 7 x 7 window), with the block means
  of the weights normalised to one; guided-filtered (instead of FSDAF's similar pixels).

All heavy filters run on reduced grids (block grid; a sub-grid of ``q`` pixels for the
guided filter, a "fast guided filter") so that the cost per fine pixel is a few dozen
operations.
"""
from functools import cached_property
from typing import Dict, Optional

import torch
import torch.nn.functional as F

HI_RADIUS = 3          # homogeneity index window 7 x 7 fine pixels
LOCAL_STD_RADIUS = 2   # local std of F1 (CNN feature), 5 x 5


def box_sum(x: torch.Tensor, r: int) -> torch.Tensor:
    """Sum over a (2r+1)^2 window, zero outside, on the last two axes (separable).

    Sums of shifted slices, in the input's dtype (uint8 counts stay uint8): for the small
    radii used here (r <= 3) several times faster than pooling or cumulative sums (and no
    padded copy), and exact for counts."""
    if r <= 0:
        return x
    rows = x.clone()
    for i in range(1, r + 1):
        rows[..., i:] += x[..., :-i]
        rows[..., :-i] += x[..., i:]
    out = rows.clone()
    for i in range(1, r + 1):
        out[..., i:, :] += rows[..., :-i, :]
        out[..., :-i, :] += rows[..., i:, :]
    return out


def all_finite(*images: torch.Tensor) -> torch.Tensor:
    """Where every band of every (bands, h, w) image is finite, as ``isfinite(x).all(0)``
    of each: the band sum of ``x * 0`` is 0 there and NaN elsewhere (NaN and infinities
    times 0 are NaN). One product and one sum: several times faster than torch's isfinite
    and its reduction over the bands, and exact."""
    total = None
    for x in images:
        zeros = (x * 0).sum(0)
        total = zeros if total is None else total.add_(zeros)
    return total == 0


def block_sum(x: torch.Tensor, s: int) -> torch.Tensor:
    """Sums over the s x s blocks of the window grid (last two axes; partial blocks count
    the pixels they have).

    The s rows of a block are added first (whole contiguous rows: vectorised, no padded copy
    of the window), then the s columns of the s-times smaller result: about ten times faster
    than reducing the short last axis first. Integer inputs (uint8 class masks) are counted
    in int16 (exact for blocks of up to 181 x 181 pixels; torch would widen them to int64,
    four times slower)."""
    if s == 1:
        return x
    *lead, h, w = x.shape
    dtype = None if x.is_floating_point() else (torch.int16 if s * s < 2 ** 15 else torch.int32)
    whole = h // s * s
    rows = x[..., :whole, :].reshape(*lead, h // s, s, w).sum(-2, dtype=dtype)
    if whole < h:
        rows = torch.cat([rows, x[..., whole:, :].sum(-2, keepdim=True, dtype=dtype)], -2)
    nbx = -(-w // s)
    if nbx * s != w:
        rows = F.pad(rows, (0, nbx * s - w))
    return rows.reshape(*lead, rows.shape[-2], nbx, s).sum(-1, dtype=dtype)


def block_expand(x: torch.Tensor, s: int, h: int, w: int) -> torch.Tensor:
    """Block values repeated over their pixels (nearest), cropped to h x w."""
    if s == 1:
        return x[..., :h, :w]
    return x.repeat_interleave(s, -2).repeat_interleave(s, -1)[..., :h, :w]


class Interp:
    """Bilinear interpolation from the centres of s x s blocks to the pixels of an h x w
    window, normalised by block validity (an invalid block does not count)."""

    def __init__(self, h: int, w: int, s: int, bvalid: torch.Tensor):
        self.h, self.w, self.s = h, w, s
        self.bvalid = bvalid
        self.den = self._bil(bvalid[None])[0]
        self._den_safe = self.den.clamp_min(1e-6)
        self._no_support = self.den <= 1e-6
        # every block valid (a tile inside the image): the weights sum to exactly one at
        # every pixel, so the normalisation is the identity and is skipped
        self._all_valid = bool((bvalid == 1).all()) and bool((self.den == 1).all())

    def _bil(self, g: torch.Tensor) -> torch.Tensor:
        """(C, nby, nbx) -> (C, h, w): pixel i of block centres at (i + 0.5) / s - 0.5,
        clamped at the window edge (torch's bilinear up-sampling by s, cropped)."""
        up = F.interpolate(g[None], scale_factor=self.s, mode="bilinear", align_corners=False)
        return up[0, :, :self.h, :self.w]

    def up(self, g: torch.Tensor) -> torch.Tensor:
        """(C, nby, nbx) -> (C, h, w)."""
        if self._all_valid:
            return self._bil(g)
        return self._normalise(self._bil(g * self.bvalid))

    def _normalise(self, num: torch.Tensor) -> torch.Tensor:
        """Divide by the weight of the valid blocks; 0 where none is near (in place)."""
        return num.div_(self._den_safe).masked_fill_(self._no_support, 0.0)

    def _axis(self, n: int, nb: int):
        p = ((torch.arange(n, device=self.bvalid.device, dtype=torch.float32) + 0.5) / self.s
             - 0.5).clamp(0, nb - 1)
        i0 = p.floor().long()
        return i0, (i0 + 1).clamp(max=nb - 1), p - i0

    def up_class(self, sol: torch.Tensor, lab: torch.Tensor) -> torch.Tensor:
        """Class values ``sol`` (nby, nbx, k, b) read at each pixel's class ``lab`` (h, w),
        interpolated between block centres -> (b, h, w). Separable: the class values are
        first interpolated along the rows of blocks to every pixel column (a small
        (b, nby, w, k) table), then each pixel reads its class from the two block rows
        around it (two gathers per band instead of four)."""
        nby, nbx, k, b = sol.shape
        y0, y1, wy = self._axis(self.h, nby)
        x0, x1, wx = self._axis(self.w, nbx)
        w0, w1 = (1 - wx)[None, :], wx[None, :]
        if not self._all_valid:            # an invalid block does not count
            w0, w1 = w0 * self.bvalid[:, x0], w1 * self.bvalid[:, x1]
        per_band = sol.permute(3, 0, 1, 2)                                  # (b, nby, nbx, k)
        rows = (per_band[:, :, x0] * w0[None, :, :, None]
                + per_band[:, :, x1] * w1[None, :, :, None]).reshape(b, -1)  # (b, nby*w*k)
        column = torch.arange(self.w, device=sol.device)[None, :] * k + lab
        above = (y0 * (self.w * k))[:, None] + column
        below = (y1 * (self.w * k))[:, None] + column
        out = torch.empty(b, self.h, self.w, device=sol.device)
        for j in range(b):
            torch.mul(rows[j].take(above), (1 - wy)[:, None], out=out[j])
            out[j].addcmul_(rows[j].take(below), wy[:, None])
        return out if self._all_valid else self._normalise(out)


class GuidedFilter:
    """Per-band guided filter (He et al.) with guide ``g`` (b, h, w), on a sub-grid of ``q``
    pixels (fast guided filter): window statistics over (2r+1) x (2r+1) sub-blocks, the
    linear coefficients interpolated back to the pixels. ``q`` = 1 is the exact filter with a
    (2r+1)^2 pixel window."""

    def __init__(self, g: torch.Tensor, v: torch.Tensor, r: int, q: int, eps: float):
        self.g, self.v, self.r, self.q, self.eps = g, v, r, q, eps
        h, w = v.shape
        self.vq = block_sum(v, q)                            # valid pixels per sub-block
        self.cnt = box_sum(self.vq, r).clamp_min(1e-6)
        self.bvalid = (self.vq > 0.5).float()          # sub-blocks inside the image
        self.mg = box_sum(block_sum(g * v, q), r) / self.cnt
        self.vg = box_sum(block_sum(g * g * v, q), r) / self.cnt - self.mg * self.mg
        self.interp = Interp(h, w, q, self.bvalid) if q > 1 else None

    def __call__(self, p: torch.Tensor, bands: slice = slice(None)) -> torch.Tensor:
        """Filter ``p`` (n, h, w) with the guide bands ``bands`` (n of them)."""
        q, r, v = self.q, self.r, self.v
        g, mg, vg = self.g[bands], self.mg[bands], self.vg[bands]
        pv = p * v
        mp = box_sum(block_sum(pv, q), r) / self.cnt
        cov = box_sum(block_sum(pv.mul_(g), q), r) / self.cnt - mg * mp    # g p v (v is 0/1)
        a = cov / (vg + self.eps)
        b = mp - a * mg
        if self.interp is None:      # exact: average the coefficients over the window
            a = box_sum(a * v, r) / self.cnt
            b = box_sum(b * v, r) / self.cnt
            return a * g + b
        ab = self.interp.up(torch.cat([a, b]) * self.bvalid)
        n = p.shape[0]
        return ab[:n].mul_(g).add_(ab[n:])


def sub_grid(s: int) -> int:
    """The guided filter's sub-grid: about a quarter of a block (windows start on multiples
    of ``alignment(s)`` so that both grids are the same in every tile)."""
    return max(1, s // 4)


def alignment(s: int) -> int:
    """Windows must start on multiples of this: the block grid and the sub-grid."""
    import math
    q = sub_grid(s)
    return s * q // math.gcd(s, q)


def classify(f: torch.Tensor, centres: torch.Tensor, mean: torch.Tensor,
             std: torch.Tensor) -> torch.Tensor:
    """Nearest centre (standardised) of every pixel of ``f`` (b, h, w) -> labels (h, w)."""
    b, h, w = f.shape
    x = ((f - mean[:, None, None]) / std[:, None, None]).reshape(b, -1)
    norms = (centres * centres).sum(1)
    # one centre at a time (a running minimum; ties keep the first centre, as argmin does):
    # no (classes, pixels) distance matrix, and faster than argmin across its rows
    best = norms[0] - 2.0 * (centres[0] @ x)
    labels = torch.zeros(best.shape, dtype=torch.long, device=f.device)
    for j in range(1, centres.shape[0]):
        d = norms[j] - 2.0 * (centres[j] @ x)
        closer = d < best
        best = torch.where(closer, d, best)
        labels[closer] = j
    return labels.reshape(h, w)


class PairBase:
    """What ``PairFields`` computes from F1 and the validity alone, not from C2: the classes,
    the homogeneity index, the block class fractions and their unmixing matrices, the
    interpolation and the guided filter's set-up. A series keeps
    it per (pair, tile) for all the dates whose validity is the same (``PairFields``'
    ``cache``), so that only the C2 part is computed per date."""

    def __init__(self, f1: torch.Tensor, pair_valid: torch.Tensor, valid: torch.Tensor,
                 stats: Dict, s: int, window: int, ridge: float, eps: float):
        self.pair_valid, self.valid = pair_valid, valid     # F1 and C1 valid; and C2 too
        self.stats, self.options = stats, (s, window, ridge, eps)
        self.v = v = valid.float()
        self.f = f = torch.where(valid, f1, 0.0)
        b, h, w = f.shape
        centres = stats["centres"]
        k = centres.shape[0]
        self.lab = torch.where(valid, classify(f, centres, stats["mean"], stats["std"]), 0)
        # one-hot classes as uint8 (0 where invalid): exact, cheap window counts
        oh = ((self.lab[None] == torch.arange(k, device=f.device)[:, None, None]) & valid)
        oh = oh.to(torch.uint8)
        same = box_sum(oh, HI_RADIUS).gather(0, self.lab[None])[0]   # same-class neighbours
        self.hi = same.float() * v / box_sum(v, HI_RADIUS).clamp_min(1.0)

        # block grid: class fractions of every coarse pixel
        nv = block_sum(v, s)
        self.inv = 1.0 / nv.clamp_min(1.0)
        self.bw = bw = (nv > 0.5).float()
        self.frac = frac = block_sum(oh, s).float() * self.inv
        del oh, same
        # local unmixing: normal equations over window x window blocks, ridge to global change
        self.wr = wr = window_radius(window)
        self.cnt = box_sum(bw, wr).clamp_min(1.0)
        iu = torch.triu_indices(k, k)
        prods = box_sum(frac[iu[0]] * frac[iu[1]] * bw, wr) / self.cnt   # (npairs, nby, nbx)
        m = torch.zeros(frac.shape[1], frac.shape[2], k, k, device=f.device)
        m[:, :, iu[0], iu[1]] = prods.permute(1, 2, 0)
        m[:, :, iu[1], iu[0]] = prods.permute(1, 2, 0)
        self.normal = m + ridge * torch.eye(k, device=f.device)
        self.interp = Interp(h, w, s, bw)
        self.guided = GuidedFilter(f, v, guided_radius(s), sub_grid(s), eps)

    def serves(self, valid: torch.Tensor, stats: Dict, options) -> bool:
        """Whether this base is the one of ``valid``, ``stats`` and ``options``."""
        return (options == self.options and torch.equal(valid, self.valid)
                and all(torch.equal(stats[key], self.stats[key])
                        for key in ("centres", "mean", "std")))

    @cached_property
    def lstd_count(self) -> torch.Tensor:
        """Valid pixels in each local-std window (the same for every band)."""
        return box_sum(self.v, LOCAL_STD_RADIUS).clamp_min(1.0)


class PairFields:
    """Candidate change fields of one pair (F1, C1) and C2 over one window (see module doc).

    The constructor does the band-independent work (validity, classes, homogeneity index,
    the class-wise unmixing on the block grid; the part without C2 in a ``PairBase``);
    ``band(j)`` computes band j's fields, so only one band's fine-grid temporaries are in
    memory at a time.
    ``stats``: tensors ``centres`` (k, b), ``mean``/``std`` (b,), ``global_change`` (k, b).
    ``alpha`` < 1 (small-scene fallback): ``gu`` and ``gf`` are pulled towards ``gd``,
    ``alpha * x + (1 - alpha) * gd``.
    ``cache``: a dict kept for this pair's F1 and C1 over this window across calls with
    other C2 (a series' dates): its ``PairBase`` is kept there and reused whenever C2 is
    valid wherever F1 and C1 are (the same arithmetic: the same fields).
    """

    def __init__(self, f1: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor, stats: Dict,
                 s: int, window: int = 5, ridge: float = 0.1, eps: float = 1e-4,
                 alpha: float = 1.0, cache: Optional[Dict] = None):
        base = (cache or {}).get("base")
        pair_valid = base.pair_valid if base is not None else all_finite(f1, c1)
        valid = pair_valid & all_finite(c2)
        options = (s, window, ridge, eps)
        if base is None or not base.serves(valid, stats, options):
            base = PairBase(f1, pair_valid, valid, stats, *options)
            if cache is not None and torch.equal(valid, pair_valid):
                cache["base"] = base
        self.base = base
        self.valid, self.v, self.f, self.lab = base.valid, base.v, base.f, base.lab
        self.hi, self.inv, self.interp, self.guided = base.hi, base.inv, base.interp, \
            base.guided
        self.c1, self.c2, self.s, self.alpha = c1, c2, s, alpha
        b = self.f.shape[0]
        # block grid: the mean coarse change of every coarse pixel, unmixed locally
        self.dcb = torch.stack([block_sum(self.dc(j), s) for j in range(b)]) * self.inv
        rhs = box_sum(base.frac[:, None] * self.dcb[None] * base.bw, base.wr) / base.cnt
        rhs = rhs.permute(2, 3, 0, 1) + ridge * stats["global_change"]
        self.sol = torch.linalg.solve(base.normal, rhs)                    # (nby, nbx, k, b)
        self.explained = torch.einsum("kyx,yxkb->byx", base.frac, self.sol)
        # the class change of every pixel, all bands at once (read per band in ``band``)
        self.own = self.interp.up_class(self.sol, self.lab) * self.v

    def dc(self, j: int) -> torch.Tensor:
        """The coarse change of band j (0 where invalid)."""
        return torch.where(self.valid, self.c2[j] - self.c1[j], 0.0)

    def band(self, j: int, features: bool = False) -> Dict[str, torch.Tensor]:
        """Band j's fields (h, w), 0 where invalid: ``dc``, ``gd``, ``gu``, ``gf``; with
        ``features`` also ``lstd`` (local std of F1) and ``hi`` (homogeneity index); and
        ``valid``."""
        # the band's temporaries are changed in place (fewer window-sized allocations), in
        # the same arithmetic order as the formulas in the comments: the same values
        s, v, f = self.s, self.v, self.f[j:j + 1]
        h, w = v.shape
        dc = self.dc(j)[None]
        dcb = self.dcb[j:j + 1]
        own = self.own[j:j + 1]                                           # class change
        u = self.interp.up(dcb - self.explained[j:j + 1]).add_(own)

        # FSDAF-style residual distribution (block residual of the temporal prediction)
        rb = dcb - block_sum(own, s) * self.inv
        c2b = block_sum(torch.where(self.valid, self.c2[j], 0.0), s)[None] * self.inv
        err = self.interp.up(c2b).sub_(f + own)                             # "TPS" error
        rblk = block_expand(rb, s, h, w)
        against = (err * rblk) < 0                        # 0 against the residual's sign
        err = err.abs_().masked_fill_(against, 0.0)
        # (|err| hi + |rblk| (1 - hi) + 1e-6) v
        wgt = err.mul_(self.hi).add_(rblk.abs().mul_(1.0 - self.hi)).add_(1e-6).mul_(v)

        def normalise(x):       # x / its block mean (1 where that is not positive), x v
            mean = block_expand(block_sum(x, s) * self.inv, s, h, w)
            empty = ~(mean > 0)
            return x.div_(mean.clamp_min_(1e-12)).masked_fill_(empty, 1.0).mul_(v)
        wgt = normalise(wgt)
        wgt = normalise(wgt.masked_fill_(wgt > 10, 1.0))
        fs = wgt.mul_(rblk).add_(own)                                       # own + wgt rblk

        # the three guided filters of the band in one pass (the same guide band)
        gd, gu, gf = self.guided(torch.cat([dc, u, fs]), slice(j, j + 1)).mul_(v)
        out = dict(valid=self.valid, dc=dc[0], gd=gd, gu=gu, gf=gf)
        if self.alpha < 1.0:
            for key in ("gu", "gf"):
                out[key] = self.alpha * out[key] + (1.0 - self.alpha) * out["gd"]
        if features:
            r, n = LOCAL_STD_RADIUS, self.base.lstd_count
            mf = box_sum(f, r).div_(n)
            out["lstd"] = box_sum(f * f, r).div_(n).sub_(mf * mf).clamp_min_(0.0).sqrt_() \
                .mul_(v)[0]                                  # sqrt(max(E(f^2) - E(f)^2, 0)) v
            out["hi"] = self.hi
        return out


def window_radius(window: int) -> int:
    """The radius in blocks of a ``window`` x ``window`` block window (at least 1)."""
    return max(1, int(window) // 2)


def guided_radius(s: int) -> int:
    """The guided filter's box radius in sub-blocks (about half a block)."""
    return max(1, round(max(1, s // 2) / sub_grid(s)))


def guided_reach(s: int) -> int:
    """How far (fine pixels) the guided filter reads around a pixel: the box of sub-blocks
    around the sub-block whose centre is nearest beyond the pixel's own (the bilinear
    interpolation's neighbour), to its far edge; q = 1: the box of the coefficients' box."""
    q, r = sub_grid(s), guided_radius(s)
    return 2 * r if q == 1 else (r + 2) * q - 1 - q // 2


def reach(s: int, window: int = 5, around: int = 0) -> int:
    """How far (fine pixels) beyond a tile that starts on the block grid ``PairFields``
    reads for its fields at the pixels up to ``around`` pixels outside the tile: the guided
    filter reads the pixels within ``guided_reach``; their class change is interpolated
    from the neighbouring blocks' and each block's is unmixed over ``window`` x ``window``
    blocks, so whole blocks beyond those (the homogeneity index, FSDAF's weights and the
    local std look no further than that)."""
    wr = window_radius(window)
    pixels = around + guided_reach(s)
    return max((-(-pixels // s) + 1 + wr) * s, pixels + max(HI_RADIUS, LOCAL_STD_RADIUS))
