"""The default fusion model (``stfnet``), a fusion method of ``core.methods``.

For each given pair (F1, C1), over the block grid of coarse pixels
(``core/stfnet_fields.py``):
  1. classes: k-means on a subsample of F1 (``prepare``), every fine pixel gets a class;
  2. candidate change fields: the coarse change ``dc``, its guided filter ``gd`` (F1 as the
     guide), the guided class-wise unmixing ``gu`` and the guided FSDAF-style prediction
     ``gf`` (unmixed class change + block residual distributed with the homogeneity index);
  3. small-scene fallback: the unmixing needs coarse pixels. With ``n`` coarse pixels in the
     scene, ``k`` classes and a ``window`` x ``window`` unmixing window, its confidence is
     ``alpha = clip((n - k) / (window^2 - k), 0, 1)`` (no support with fewer coarse pixels than
     unknowns, full support once one unmixing window is filled) and the unmixing candidates
     are shrunk towards the guided coarse change: ``gu <- alpha gu + (1 - alpha) gd`` (same
     for ``gf``);
  4. the STFNet CNN (``core/models.py``) blends the candidates per pixel (softmax weights)
     plus a small correction; without the CNN the change is ``gf``;
  prediction = F1 + change. With two pairs (t1 before, t3 after) the two predictions are
  weighted per pixel by the inverse of the local coarse difference |C2 - Ci| (block means).

All of it is local (a finite halo, ``halo(state)``); global quantities live in
``StfnetState`` so a tiled run equals an untiled run (tiles start on the block grid).
The candidate fields are ``core/stfnet_fields.py``; training (``core/training.py``) uses
the same statistics and CNN inputs (``pair_stats``, ``stfnet_inputs``).
"""
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Dict, List, Optional, Sequence

import numpy as np

from . import raster, stfnet_fields, tiling
from .kmeans import kmeans
from .torch_check import require_torch

# physics defaults (measured on ../shared/data, see benchmarks/default_model_ablation.py)
PHYSICS_DEFAULTS = dict(classes=8, window=5, ridge=0.1, eps=1e-4)
KMEANS_SAMPLE = 20000
KMEANS_ITERATIONS = 25
PREPARE_SHARE = 0.2  # of a run's progress
CNN_STRIP_ROWS = 128          # rows of a tile the CNN processes at once (bounded memory)


@dataclass
class StfnetSettings:
    """What ``prepare`` needs besides the images."""
    model: object                      # models.STFNet (trained or not)
    scale_ratio: float = 16.0          # coarse pixel / fine pixel
    use_cnn: bool = True               # False: the change is the ``gf`` candidate
    options: Dict = field(default_factory=lambda: dict(PHYSICS_DEFAULTS))
    seed: int = 0
    device: str = "cpu"


@dataclass
class PairStats:
    """Global statistics of one fine/coarse pair, from ``prepare``."""
    centres: np.ndarray          # (k, bands) k-means centres on standardised F1
    mean: np.ndarray             # (bands,)
    std: np.ndarray              # (bands,)
    global_change: np.ndarray    # (k, bands) scene-wide class changes of C2 - Ci
    band_scale: np.ndarray       # (bands,) std of F1 per band (CNN normalisation)
    valid_pixels: int            # pixels valid in F, C and C2 (of the windows given)

    def tensors(self, torch, device):
        t = lambda a: torch.as_tensor(np.asarray(a, np.float32), device=device)  # noqa: E731
        return dict(centres=t(self.centres), mean=t(self.mean), std=t(self.std),
                    global_change=t(self.global_change), band_scale=t(self.band_scale))


@dataclass
class StfnetState:
    METHOD: ClassVar[str] = "stfnet"
    model: object
    band_count: int
    scale_ratio: float
    pairs: List[PairStats] = field(default_factory=list)
    use_cnn: bool = True
    options: Dict = field(default_factory=lambda: dict(PHYSICS_DEFAULTS))
    alpha: float = 1.0           # confidence of the unmixing (small-scene fallback)
    device: str = "cpu"

    @property
    def block(self) -> int:
        return max(1, int(round(self.scale_ratio)))


# ----------------------------------------------------------------------------- prepare

def unmixing_confidence(coarse_pixels: float, classes: int, window: int) -> float:
    """alpha = clip((n - k) / (window^2 - k), 0, 1): the small-scene fallback weight."""
    k = float(classes)
    full = max(float(window) ** 2, k + 1.0)
    return float(np.clip((coarse_pixels - k) / (full - k), 0.0, 1.0))


def pair_stats(windows_f: Sequence[np.ndarray], windows_c: Sequence[np.ndarray],
                windows_c2: Sequence[np.ndarray], ratio: float, classes: int,
                seed: int, is_canceled=None) -> PairStats:
    """Statistics of the pair (F, C) for the coarse image C2, all given as windows."""
    torch = require_torch()
    rng = np.random.default_rng(seed)
    masks = [raster.valid_mask(*w) for w in zip(windows_f, windows_c, windows_c2)]
    # valid pixels as (bands, n) float32; statistics band by band in float64 (bounded memory)
    bands, n = windows_f[0].shape[0], sum(int(v.sum()) for v in masks)
    if n == 0:
        raise ValueError("no pixel is valid in all inputs")
    values = np.empty((bands, n), np.float32)
    start = 0
    for f, v in zip(windows_f, masks):
        count = int(v.sum())
        values[:, start:start + count] = f[:, v]
        start += count
    mean = np.array([row.mean(dtype=np.float64) for row in values])
    band_std = np.array([row.std(dtype=np.float64) for row in values])
    std = band_std + 1e-6
    sample = values[:, rng.choice(n, min(n, KMEANS_SAMPLE), replace=False)].T.astype(np.float64)
    del values
    centres = kmeans((sample - mean) / std, classes, KMEANS_ITERATIONS, seed, is_canceled)
    k = len(centres)
    block = max(1, int(round(ratio)))
    # scene-wide class changes: least squares of the block-mean coarse change on the block
    # class fractions, accumulated window by window as normal equations
    normal_matrix, normal_rhs = np.zeros((k, k)), np.zeros((k, bands))
    centres_t = torch.as_tensor(centres, dtype=torch.float32)
    mean_t, std_t = (torch.as_tensor(a, dtype=torch.float32) for a in (mean, std))
    for f, c, c2, v in zip(windows_f, windows_c, windows_c2, masks):
        tiling.check_canceled(is_canceled)
        coarse_change = np.where(v, c2 - c, 0).astype(np.float32)
        valid = torch.from_numpy(v)
        fine = torch.from_numpy(np.where(v, f, 0).astype(np.float32))
        labels = stfnet_fields.classify(fine, centres_t, mean_t, std_t)
        one_hot = torch.nn.functional.one_hot(labels, k).permute(2, 0, 1).float() * valid
        valid_per_block = stfnet_fields.block_sum(valid.float(), block)
        used = valid_per_block.reshape(-1).numpy() > 0.5
        valid_per_block = valid_per_block.clamp_min(1)
        fractions = (stfnet_fields.block_sum(one_hot, block) / valid_per_block) \
            .reshape(k, -1).double().numpy()[:, used]
        block_change = (stfnet_fields.block_sum(torch.from_numpy(coarse_change), block)
                        / valid_per_block).reshape(bands, -1).double().numpy()[:, used]
        normal_matrix += fractions @ fractions.T
        normal_rhs += fractions @ block_change.T
    global_change = np.linalg.solve(
        normal_matrix + 1e-6 * np.trace(normal_matrix) * np.eye(k) + 1e-12 * np.eye(k),
        normal_rhs)
    return PairStats(centres, mean, std, global_change, band_std + 1e-4, n)


def prepare(pairs, coarse_t2, settings: StfnetSettings,
            progress: Callable[[float], None] = tiling.no_progress,
            is_canceled: Callable[[], bool] = tiling.never_canceled,
            log: Optional[Callable[[str], None]] = None) -> StfnetState:
    """Class centres, scene-wide class changes and the unmixing confidence of every pair,
    from at most ``tiling.SAMPLE_MAX_WINDOWS`` windows of the sources (the whole image when
    small), so memory depends on the window size only."""
    ratio = float(settings.scale_ratio)
    opts = settings.options
    block = max(1, int(round(ratio)))
    windows = tiling.sample_windows((coarse_t2.height, coarse_t2.width),
                                    align=stfnet_fields.alignment(block))

    def read(source):
        tiling.check_canceled(is_canceled)
        return [source.window(x0, y0, w, h) for (y0, x0, h, w) in windows]

    c2 = read(coarse_t2)
    state = StfnetState(settings.model, pairs[0][0].band_count, ratio, use_cnn=settings.use_cnn,
                        options=dict(opts), device=str(settings.device))
    for fine, coarse in pairs:
        tiling.check_canceled(is_canceled)
        state.pairs.append(pair_stats(read(fine), read(coarse), c2, ratio,
                                      int(opts["classes"]), settings.seed, is_canceled))
    seen = sum(h * w for (_, _, h, w) in windows)
    valid = state.pairs[0].valid_pixels
    total = float(coarse_t2.width * coarse_t2.height)
    coarse_pixels = total * valid / max(seen, 1) / ratio ** 2
    state.alpha = unmixing_confidence(coarse_pixels, len(state.pairs[0].centres),
                                      int(opts["window"]))
    if log and state.alpha < 1.0:
        log(f"small scene: {coarse_pixels:.1f} coarse pixels, unmixing confidence "
            f"{state.alpha:.2f} (the rest from the guided coarse change)")
    state.model.to(state.device)
    state.model.eval()
    progress(1.0)
    return state


# ----------------------------------------------------------------------------- per tile

def halo(state: StfnetState) -> int:
    """Pixels of context a tile needs on each side for an exact result: a multiple of the
    block size, so that tiles start on the block grid."""
    block = state.block
    # + the CNN's reach + the pair weights' block
    need = stfnet_fields.reach(block, int(state.options["window"])) + 1 + block
    multiple = stfnet_fields.alignment(block)
    return -(-need // multiple) * multiple


def tile_multiple(state: StfnetState) -> int:
    """Tile sizes are multiples of this (the block grid and sub-grid)."""
    return stfnet_fields.alignment(state.block)


def stfnet_band_inputs(torch, fields: Dict, f1_band, scale):
    """CNN input (C, h, w) of one band from its ``PairFields.band`` fields (with features):
    candidates and features divided by the band scale, and the homogeneity index."""
    dc, gd, gu, gf = (fields[k] for k in ("dc", "gd", "gu", "gf"))
    f = torch.where(fields["valid"], f1_band, 0.0)
    scaled = torch.stack([dc, gd, gu, gf, f, fields["lstd"], (dc - gd).abs(),
                          (gu - gf).abs()]) / scale
    return torch.cat([scaled, fields["hi"][None]])


def stfnet_inputs(torch, pair: "stfnet_fields.PairFields", f1, scale):
    """CNN inputs of all bands (bands, C, h, w) (training)."""
    return torch.stack([stfnet_band_inputs(torch, pair.band(j, features=True), f1[j], scale[j])
                        for j in range(f1.shape[0])])


def _stfnet_pair(state: "StfnetState", index: int, f1, c1, c2, margin: int = 0,
                 band_done=None):
    """Prediction (bands, h, w) tensor (NaN where invalid) and the validity mask, band by
    band (one band's fields in memory at a time; ``band_done()`` after each). The CNN runs
    only inside ``margin`` (the caller discards the margin)."""
    torch = require_torch()
    stats = state.pairs[index].tensors(torch, state.device)
    pair = stfnet_fields.PairFields(f1, c1, c2, stats, state.block,
                                    int(state.options["window"]), float(state.options["ridge"]),
                                    float(state.options["eps"]), state.alpha)
    valid = pair.valid
    h, w = valid.shape
    m = max(0, min(int(margin) - 1, (h - 1) // 2, (w - 1) // 2))  # keep the CNN's reach
    change = torch.full(f1.shape, float("nan"), device=f1.device)
    for j in _each_band(f1.shape[0], band_done):
        fields = pair.band(j, features=state.use_cnn)
        if not state.use_cnn:
            change[j] = fields["gf"]
            continue
        scale = stats["band_scale"][j]
        for rows, keep in _cnn_strips(h - 2 * m, state.model.receptive_radius):
            window = (slice(m + rows.start, m + rows.stop), slice(m, w - m))
            x = stfnet_band_inputs(torch, {k: v[window] for k, v in fields.items()},
                                   f1[j][window], scale)
            # channels-last: the convolutions run about twice as fast on CPU (oneDNN)
            x = x[None].contiguous(memory_format=torch.channels_last)
            with torch.no_grad():
                y = state.model(x, valid[window].float()[None, None])[0, 0]
            change[j, m + keep.start:m + keep.stop, m:w - m] = \
                y[keep.start - rows.start:keep.stop - rows.start] * scale
    out = torch.where(valid, f1 + change, float("nan"))
    return out, valid


def _each_band(count: int, band_done=None):
    """0 .. count-1, calling ``band_done()`` (progress) after each band's work."""
    for band in range(count):
        yield band
        if band_done is not None:
            band_done()


def _cnn_strips(rows: int, reach: int, strip: int = CNN_STRIP_ROWS):
    """(rows read, rows kept) of the strips the CNN runs on: each strip is read with the
    ``reach`` rows its kernel needs on either side (a strip equals the whole, and the CNN's
    temporaries stay a strip's size)."""
    for y0 in range(0, rows, strip):
        y1 = min(y0 + strip, rows)
        yield slice(max(0, y0 - reach), min(rows, y1 + reach)), slice(y0, y1)


def _pair_weights(torch, c2, ca, cb, valid, s, eps=1e-3):
    """Per-pixel weights of two predictions from the local coarse agreement with C2."""
    v = valid.float()
    nv = stfnet_fields.block_sum(v, s)
    bw = (nv > 0.5).float()
    interp = stfnet_fields.Interp(v.shape[0], v.shape[1], s, bw)
    err = lambda c: stfnet_fields.block_sum(torch.where(valid, (c2 - c).abs().mean(0), 0.0), s) \
        / nv.clamp_min(1)  # noqa: E731
    e = interp.up(torch.stack([err(ca), err(cb)]))
    wa, wb = 1.0 / (e[0] + eps), 1.0 / (e[1] + eps)
    return wa / (wa + wb)


def predict_tile(state: StfnetState, window, is_canceled=None) -> np.ndarray:
    """Predicted fine image at t2 over a ``methods.TileWindow`` (tile + halo) that starts
    on the block grid (a multiple of ``tile_multiple``); the CNN skips ``window.margin``."""
    torch = require_torch()
    as_tensor = lambda a: torch.as_tensor(np.asarray(a, np.float32),  # noqa: E731
                                          device=state.device)
    c2 = as_tensor(window.coarse_t2)
    (f1, c1), *second = [(as_tensor(f), as_tensor(c)) for f, c in window.pairs]
    prediction, valid = _stfnet_pair(state, 0, f1, c1, c2, window.margin, window.step)
    if second and len(state.pairs) >= 2:
        f3, c3 = second[0]
        prediction_3, valid_3 = _stfnet_pair(state, 1, f3, c3, c2, window.margin, window.step)
        valid = valid & valid_3
        weight = _pair_weights(torch, c2, c1, c3, valid, state.block)
        prediction = torch.where(valid, weight * prediction + (1 - weight) * prediction_3,
                                 float("nan"))
    return prediction.float().cpu().numpy()
