"""Fusion of a fine/coarse pair (or two) with a coarse image at t2: prepare once, fuse per tile.

Two models (``core.models.ARCHITECTURES``):

``stfnet`` (default): for each given pair (F1, C1), over the block grid of coarse pixels
(``core/_fusion_fast.py``):
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

``paper``: the paper's 3x3-patch regression DCNN maps a coarse image to a fine-like
intermediate image P; P1 = net(C1), P2 = net(C2) and high-pass modulation brings in the prior
fine image: F2 = P2 + (F1 - P1) * clip(P2 / P1); with two pairs the two HPM images are weighted
by the inverse local |P2 - Pi|.

All of it is local (a finite halo, ``halo(state)``); global quantities live in
``FusionState`` so a tiled run equals an untiled run (stfnet tiles start on the block grid).
"""
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from . import raster, tiling
from . import _fusion_fast as fast
from . import _fusion_physics as phys
from .errors import InputError
from .kmeans import kmeans
from .models import DEFAULT_ARCHITECTURE, build_model, load_model, \
    resolve_architecture
from .torch_check import require_torch

DEFAULT_MODEL_FILE = "default.pt"
# physics defaults of stfnet (measured on ../shared/data, see benchmarks/fusion_accuracy.py)
STFNET_DEFAULTS = dict(classes=8, window=5, ridge=0.1, eps=1e-4)
PREPARE_WINDOW = 512          # side of the windows read by prepare on big files
PREPARE_MAX_WINDOWS = 9
KMEANS_SAMPLE = 20000
KMEANS_ITERATIONS = 25
PAPER_FUSE_EPOCHS = 50        # Table 1
CNN_STRIP_ROWS = 128          # rows of a tile the CNN processes at once (bounded memory)
# tile side of fuse_files: larger tiles waste less work on the halo (about 120 px at 30 m),
# about 900 px keeps the peak memory under 1 GB (torch included)
FUSE_TILE = 896


def default_model_path() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "model_weights", DEFAULT_MODEL_FILE)


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
class FusionState:
    architecture: str
    model: object
    metadata: Dict
    band_count: int
    scale_ratio: float
    pairs: List[PairStats] = field(default_factory=list)
    use_cnn: bool = True
    options: Dict = field(default_factory=dict)
    alpha: float = 1.0           # confidence of the unmixing (small-scene fallback)
    device: str = "cpu"

    @property
    def block(self) -> int:
        return max(1, int(round(self.scale_ratio)))


# ----------------------------------------------------------------------------- prepare

def _sample_windows(shape, window=PREPARE_WINDOW, max_windows=PREPARE_MAX_WINDOWS, align=1):
    """Windows (y0, x0, h, w) spread over an image of ``shape`` (rows, cols), starting on
    multiples of ``align``."""
    rows, cols = shape
    if rows * cols <= window * window * max_windows:
        return [(0, 0, rows, cols)]
    n = int(np.ceil(np.sqrt(max_windows)))
    ys = np.linspace(0, max(rows - window, 0), n).astype(int) // align * align
    xs = np.linspace(0, max(cols - window, 0), n).astype(int) // align * align
    return [(int(y), int(x), min(window, rows), min(window, cols)) for y in ys for x in xs]


def unmixing_confidence(coarse_pixels: float, classes: int, window: int) -> float:
    """alpha = clip((n - k) / (window^2 - k), 0, 1): the small-scene fallback weight."""
    k = float(classes)
    full = max(float(window) ** 2, k + 1.0)
    return float(np.clip((coarse_pixels - k) / (full - k), 0.0, 1.0))


def _pair_stats(windows_f: Sequence[np.ndarray], windows_c: Sequence[np.ndarray],
                windows_c2: Sequence[np.ndarray], ratio: float, classes: int,
                seed: int, is_canceled=None) -> PairStats:
    """Statistics of the pair (F, C) for the coarse image C2, all given as windows."""
    torch = require_torch()
    rng = np.random.default_rng(seed)
    masks = [raster.valid_mask(*w) for w in zip(windows_f, windows_c, windows_c2)]
    # valid pixels as (bands, n) float32; statistics band by band in float64 (bounded memory)
    b, n = windows_f[0].shape[0], sum(int(v.sum()) for v in masks)
    if n == 0:
        raise ValueError("no pixel is valid in all inputs")
    x = np.empty((b, n), np.float32)
    start = 0
    for f, v in zip(windows_f, masks):
        count = int(v.sum())
        x[:, start:start + count] = f[:, v]
        start += count
    mean = np.array([row.mean(dtype=np.float64) for row in x])
    band_std = np.array([row.std(dtype=np.float64) for row in x])
    std = band_std + 1e-6
    sample = x[:, rng.choice(n, min(n, KMEANS_SAMPLE), replace=False)].T.astype(np.float64)
    del x
    centres = kmeans((sample - mean) / std, classes, KMEANS_ITERATIONS, seed, is_canceled)
    k = len(centres)
    s = max(1, int(round(ratio)))
    a_sum, b_sum = np.zeros((k, k)), np.zeros((k, b))
    tc = torch.as_tensor(centres, dtype=torch.float32)
    tm, ts = (torch.as_tensor(a, dtype=torch.float32) for a in (mean, std))
    for f, c, c2, v in zip(windows_f, windows_c, windows_c2, masks):
        tiling.check_canceled(is_canceled)
        dc = np.where(v, c2 - c, 0).astype(np.float32)
        tv = torch.from_numpy(v)
        tf = torch.from_numpy(np.where(v, f, 0).astype(np.float32))
        lab = fast.classify(tf, tc, tm, ts)
        oh = torch.nn.functional.one_hot(lab, k).permute(2, 0, 1).float() * tv
        nv = fast.block_sum(tv.float(), s)
        frac = (fast.block_sum(oh, s) / nv.clamp_min(1)).reshape(k, -1).double().numpy()
        dcb = (fast.block_sum(torch.from_numpy(dc), s)
               / nv.clamp_min(1)).reshape(b, -1).double().numpy()
        used = nv.reshape(-1).numpy() > 0.5
        a_sum += frac[:, used] @ frac[:, used].T
        b_sum += frac[:, used] @ dcb[:, used].T
    gchange = np.linalg.solve(a_sum + 1e-6 * np.trace(a_sum) * np.eye(k) + 1e-12 * np.eye(k),
                              b_sum)
    return PairStats(centres, mean, std, gchange, band_std + 1e-4, n)


def _as_list(a):
    return None if a is None else (list(a) if isinstance(a, (list, tuple)) else [a])


def prepare(model=None, metadata: Optional[Dict] = None, f1=None, c1=None, c2=None,
            f3=None, c3=None, scale_ratio: float = 16.0, adapt_epochs: int = 0,
            use_cnn: Optional[bool] = None, seed: int = 0, progress=None,
            is_canceled=None, device: str = "cpu", scene_pixels: Optional[float] = None,
            log: Optional[Callable[[str], None]] = None, **options) -> FusionState:
    """Global statistics (and optional fuse-time training) from whole arrays or windows.

    ``f1, c1, c2, f3, c3`` are arrays ``(bands, rows, cols)`` or lists of such arrays (the
    windows a caller read from a big scene, all at the same places). ``model``/``metadata``
    come from ``models.load_model``; None builds an untrained model of
    ``metadata['architecture']``. ``scene_pixels``: pixels of the whole scene when the
    arrays are only windows of it (for the small-scene fallback). ``adapt_epochs`` > 0 trains
    the network on the given pair(s) (paper: coarse -> fine on each pair, a fresh network
    when the model is untrained; stfnet: needs two pairs, fine-tunes on t1->t3 and t3->t1).
    """
    require_torch()
    metadata = dict(metadata or {})
    architecture = resolve_architecture(metadata.get("architecture", DEFAULT_ARCHITECTURE))
    metadata["architecture"] = architecture
    f1, c1, c2, f3, c3 = map(_as_list, (f1, c1, c2, f3, c3))
    if (f3 is None) != (c3 is None):
        raise ValueError("give both fine_t3 and coarse_t3, or neither")
    band_count = f1[0].shape[0]
    for arrays in (c1, c2, f3, c3):
        if arrays is not None and arrays[0].shape[0] != band_count:
            raise ValueError("all inputs need the same number of bands")
    if model is None:
        model = build_model(architecture, band_count, **metadata.get("options", {}))
    if architecture == "paper" and metadata.get("trained") and \
            int(metadata.get("band_count") or band_count) != band_count:
        raise InputError("MODEL", f"this paper model was trained on "
                                  f"{metadata.get('band_count')} bands but the inputs have "
                                  f"{band_count}; give a model trained on these bands "
                                  "(stfusion:train) or leave MODEL empty.")
    if adapt_epochs > 0 and architecture == "stfnet" and f3 is None:
        raise InputError("ADAPT", "fine-tuning the default model learns from how the scene "
                                  "changes between two pairs; give FINE_T3 and COARSE_T3, "
                                  "set ADAPT to 0, or choose ARCHITECTURE paper (which "
                                  "fine-tunes on one pair).")
    opts = dict(STFNET_DEFAULTS)
    opts.update(metadata.get("fusion_options", {}))
    opts.update(options)
    if use_cnn is None:
        use_cnn = bool(metadata.get("use_cnn_by_default", metadata.get("trained", False)))
    state = FusionState(architecture, model, metadata, band_count, float(scale_ratio),
                        use_cnn=use_cnn, options=opts, device=str(device))
    if architecture == "stfnet":
        for f, c in [(f1, c1)] + ([(f3, c3)] if f3 is not None else []):
            state.pairs.append(_pair_stats(f, c, c2, scale_ratio, int(opts["classes"]), seed,
                                           is_canceled))
        seen = sum(a.shape[1] * a.shape[2] for a in f1)
        valid = state.pairs[0].valid_pixels
        total = float(scene_pixels) if scene_pixels else float(seen)
        coarse_pixels = total * valid / max(seen, 1) / float(scale_ratio) ** 2
        state.alpha = unmixing_confidence(coarse_pixels, len(state.pairs[0].centres),
                                          int(opts["window"]))
        if log and state.alpha < 1.0:
            log(f"small scene: {coarse_pixels:.1f} coarse pixels, unmixing confidence "
                f"{state.alpha:.2f} (the rest from the guided coarse change)")
    if adapt_epochs > 0:
        from . import training
        if architecture == "paper":
            pairs = list(zip(f1, c1)) + (list(zip(f3, c3)) if f3 is not None else [])
            initial = model if metadata.get("trained") else None
            state.model, history = training.train(
                pairs, "paper", epochs=adapt_epochs, seed=seed, initial_model=initial,
                progress=progress, is_canceled=is_canceled, device=device)
            state.metadata.update(trained=True, band_count=band_count,
                                  fuse_time_training={"epochs": adapt_epochs,
                                                      "final_train_loss":
                                                          history["train_loss"][-1]})
        elif f3 is not None:
            scenes = [[(a, b), (c, d)] for a, b, c, d in zip(f1, c1, f3, c3)]
            state.model, _ = training.train(scenes, "stfnet", epochs=adapt_epochs, seed=seed,
                                            initial_model=model, scale_ratio=scale_ratio,
                                            progress=progress, is_canceled=is_canceled,
                                            device=device,
                                            **{k: opts[k] for k in STFNET_DEFAULTS})
            state.use_cnn = True
    state.model.to(state.device)
    state.model.eval()
    return state


# ----------------------------------------------------------------------------- per tile

def halo(state: FusionState) -> int:
    """Pixels of context a tile needs on each side for an exact result (stfnet: a multiple
    of the block size, so that tiles start on the block grid)."""
    r = state.scale_ratio
    if state.architecture == "paper":
        return 2 + phys.footprint_radius(r) + 1      # fill + 3x3 patch + pair weights
    s = state.block
    need = fast.reach(s, int(state.options["window"])) + 1 + s   # + CNN + pair weights
    a = fast.alignment(s)
    return -(-need // a) * a


def tile_multiple(state: FusionState) -> int:
    """Tile sizes are multiples of this (the block grid and sub-grid)."""
    return fast.alignment(state.block) if state.architecture == "stfnet" else 1


def stfnet_band_inputs(torch, fields: Dict, f1_band, scale):
    """CNN input (C, h, w) of one band from its ``PairFields.band`` fields (with features):
    candidates and features divided by the band scale, and the homogeneity index."""
    dc, gd, gu, gf = (fields[k] for k in ("dc", "gd", "gu", "gf"))
    f = torch.where(fields["valid"], f1_band, 0.0)
    scaled = torch.stack([dc, gd, gu, gf, f, fields["lstd"], (dc - gd).abs(),
                          (gu - gf).abs()]) / scale
    return torch.cat([scaled, fields["hi"][None]])


def stfnet_inputs(torch, pair: "fast.PairFields", f1, scale):
    """CNN inputs of all bands (bands, C, h, w) (training)."""
    return torch.stack([stfnet_band_inputs(torch, pair.band(j, features=True), f1[j], scale[j])
                        for j in range(f1.shape[0])])


def _stfnet_pair(state: FusionState, index: int, f1, c1, c2, margin: int = 0, band_done=None):
    """Prediction (bands, h, w) tensor (NaN where invalid) and the validity mask, band by
    band (one band's fields in memory at a time; ``band_done()`` after each). The CNN runs
    only inside ``margin`` (the caller discards the margin)."""
    torch = require_torch()
    st = state.pairs[index].tensors(torch, state.device)
    pair = fast.PairFields(f1, c1, c2, st, state.block, int(state.options["window"]),
                           float(state.options["ridge"]), float(state.options["eps"]),
                           state.alpha)
    valid = pair.valid
    h, w = valid.shape
    m = max(0, min(int(margin) - 1, (h - 1) // 2, (w - 1) // 2))  # keep the CNN's reach
    change = torch.full(f1.shape, float("nan"), device=f1.device)
    for j in _each_band(f1.shape[0], band_done):
        fields = pair.band(j, features=state.use_cnn)
        if not state.use_cnn:
            change[j] = fields["gf"]
            continue
        scale = st["band_scale"][j]
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
    nv = fast.block_sum(v, s)
    bw = (nv > 0.5).float()
    interp = fast.Interp(v.shape[0], v.shape[1], s, bw)
    err = lambda c: fast.block_sum(torch.where(valid, (c2 - c).abs().mean(0), 0.0), s) \
        / nv.clamp_min(1)  # noqa: E731
    e = interp.up(torch.stack([err(ca), err(cb)]))
    wa, wb = 1.0 / (e[0] + eps), 1.0 / (e[1] + eps)
    return wa / (wa + wb)


def _paper_intermediate(state: FusionState, coarse: np.ndarray) -> np.ndarray:
    """The paper network applied to every 3x3 patch (one output pixel per patch)."""
    torch = require_torch()
    model = state.model
    b, h, w = coarse.shape
    # one NaN ring around the window, then every invalid pixel takes the mean of the valid
    # pixels of its 3x3 neighbourhood: the same rule inside a tile and at the image border
    padded = np.pad(coarse, ((0, 0), (1, 1), (1, 1)), constant_values=np.nan)
    valid = np.isfinite(padded).all(0)
    fill = np.nan_to_num(phys.box_mean(np.where(valid, padded, 0.0), valid, 1))
    padded = np.where(valid, padded, fill).astype(np.float32)
    x = torch.from_numpy(padded)[None].to(state.device)
    patches = torch.nn.functional.unfold(x, 3)[0].T.reshape(-1, b, 3, 3)
    out = np.empty((h * w, b), dtype=np.float32)
    step = 65536
    with torch.no_grad():
        for i in range(0, h * w, step):
            out[i:i + step] = model.predict_reflectance(patches[i:i + step]).cpu().numpy()
    return out.T.reshape(b, h, w)


def _paper_hpm(state, f1, c1, c2):
    p1 = _paper_intermediate(state, c1)
    p2 = _paper_intermediate(state, c2)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.clip(p2 / np.where(np.abs(p1) > 1e-3, p1, np.nan), 0.5, 2.0)
    gain = np.where(np.isfinite(gain), gain, 1.0)
    return p2 + (f1 - p1) * gain, p1, p2


def _paper_pair_weights(c2, ca, cb, valid, ratio, eps=1e-3):
    r = phys.footprint_radius(ratio)
    ea = phys.box_mean(np.nan_to_num(np.abs(c2 - ca).mean(0)), valid, r)
    eb = phys.box_mean(np.nan_to_num(np.abs(c2 - cb).mean(0)), valid, r)
    wa, wb = 1.0 / (ea + eps), 1.0 / (eb + eps)
    return wa / (wa + wb)


def fuse_tile(state: FusionState, f1, c1, c2, f3=None, c3=None, margin: int = 0,
              band_done=None) -> np.ndarray:
    """Predicted fine image at t2 over the window of the inputs (tile + halo). For stfnet
    the window must start on the block grid (a multiple of ``tile_multiple``). ``margin``:
    pixels on each side the caller will discard (may be left NaN; the halo of a tile).
    ``band_done()``: called after each band of each pair (stfnet), for progress."""
    if state.architecture == "paper":
        valid = raster.valid_mask(f1, c1, c2, *(a for a in (f3, c3) if a is not None))
        pa, p1, p2 = _paper_hpm(state, f1, c1, c2)
        if f3 is not None:
            pb, p3, _ = _paper_hpm(state, f3, c3, c2)
            w = _paper_pair_weights(p2, p1, p3, valid, state.scale_ratio)
            pa = w * pa + (1 - w) * pb
        return np.where(valid, pa, np.nan).astype(np.float32)
    torch = require_torch()
    t = lambda a: None if a is None else torch.as_tensor(  # noqa: E731
        np.asarray(a, np.float32), device=state.device)
    f1, c1, c2, f3, c3 = map(t, (f1, c1, c2, f3, c3))
    pa, va = _stfnet_pair(state, 0, f1, c1, c2, margin, band_done)
    if f3 is not None and len(state.pairs) >= 2:
        pb, vb = _stfnet_pair(state, 1, f3, c3, c2, margin, band_done)
        valid = va & vb
        w = _pair_weights(torch, c2, c1, c3, valid, state.block)
        pa = torch.where(valid, w * pa + (1 - w) * pb, float("nan"))
    return pa.float().cpu().numpy()


def fuse_arrays(state: FusionState, f1, c1, c2, f3=None, c3=None, tile_size: int = 0,
                progress=None, is_canceled=None) -> np.ndarray:
    """Fuse whole arrays; ``tile_size`` > 0 runs tile by tile with the halo (same result)."""
    progress = progress or tiling.no_progress
    is_canceled = is_canceled or tiling.never_canceled
    if tile_size <= 0:
        return fuse_tile(state, f1, c1, c2, f3, c3)
    m = tile_multiple(state)
    tile_size = -(-tile_size // m) * m
    rows, cols = f1.shape[1:]
    h = halo(state)
    out = np.full(f1.shape, np.nan, dtype=np.float32)
    total = tiling.tile_count(cols, rows, tile_size)

    def window(a, t):
        if a is None:
            return None
        x0, y0, w, hh = t.read_window
        buf = np.full((a.shape[0], hh, w), np.nan, dtype=np.float32)
        sx0, sy0 = max(x0, 0), max(y0, 0)
        sx1, sy1 = min(x0 + w, cols), min(y0 + hh, rows)
        buf[:, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = a[:, sy0:sy1, sx0:sx1]
        return buf

    for done, t in enumerate(tiling.iter_tiles(cols, rows, tile_size, h)):
        tiling.check_canceled(is_canceled)
        res = fuse_tile(state, *(window(a, t) for a in (f1, c1, c2, f3, c3)), margin=h)
        out[:, t.y0:t.y0 + t.height, t.x0:t.x0 + t.width] = t.crop(res)
        progress((done + 1) / total)
    return out


# ----------------------------------------------------------------------------- files

def _read_prepare_windows(paths: Sequence[Optional[str]], grid: raster.Grid, align: int,
                          is_canceled=None):
    wins = _sample_windows((grid.height, grid.width), align=align)
    out = []
    for p in paths:
        windows = None if p is None else []
        for (y0, x0, h, w) in wins if p is not None else ():
            tiling.check_canceled(is_canceled)
            windows.append(raster.read_window(p, x0, y0, w, h))
        out.append(windows)
    return out


def scale_ratio_for(info: raster.RasterInfo, coarse_pixel_m: float = 500.0) -> float:
    """Coarse/fine pixel-size ratio for a fine raster (MODIS 500 m by default)."""
    px = min(info.grid.pixel_size)
    return float(np.clip(coarse_pixel_m / px, 2.0, 64.0)) if px > 0 else 16.0


def fuse_files(fine_t1: str, coarse_t1: str, coarse_t2: str, output: str,
               fine_t3: Optional[str] = None, coarse_t3: Optional[str] = None,
               model_path: Optional[str] = None, architecture: Optional[str] = None,
               adapt_epochs: int = 0, device: str = "cpu",
               tile_size: int = FUSE_TILE, scale_ratio: Optional[float] = None,
               progress: Optional[Callable[[float], None]] = None,
               is_canceled: Optional[Callable[[], bool]] = None,
               log: Optional[Callable[[str], None]] = None,
               use_cnn: Optional[bool] = None) -> Dict:
    """Fuse GeoTIFFs block by block into ``output`` (encoded like ``fine_t1``).

    ``model_path`` None: ``architecture`` None or "default"/"stfnet" uses the shipped
    ``model_weights/default.pt``; "paper" trains the paper's DCNN at fuse time on the given
    pair(s) (``adapt_epochs`` epochs, Table 1's 50 when 0) then applies HPM (+ weighting).
    The prepare pass reads at most ``PREPARE_MAX_WINDOWS`` windows of ``PREPARE_WINDOW``
    pixels (the whole image when small), so memory depends on the tile size only.
    ``device``: 'cpu' or 'cuda' (the networks and the stfnet tile arithmetic run there).
    Returns a summary: architecture, cnn_used, scale_ratio, seconds, tiles, model metadata.
    """
    started = time.time()
    progress = progress or tiling.no_progress
    is_canceled = is_canceled or tiling.never_canceled
    say = log or (lambda _m: None)
    paths = [fine_t1, coarse_t1, coarse_t2, fine_t3, coarse_t3]
    if (fine_t3 is None) != (coarse_t3 is None):
        raise ValueError("give both fine_t3 and coarse_t3, or neither")
    info = raster.check_same_grid(fine_t1, paths[1:])
    wanted = resolve_architecture(architecture) if architecture else None
    if model_path is None and wanted == "paper":
        model, meta = None, {"architecture": "paper", "band_count": info.band_count,
                             "trained": False}
        adapt_epochs = adapt_epochs or PAPER_FUSE_EPOCHS
        say(f"paper DCNN: training at fuse time for {adapt_epochs} epochs (Table 1)")
    else:
        model, meta = load_model(model_path or default_model_path())
        if wanted and meta["architecture"] != wanted:
            raise ValueError(f"the model file is a '{meta['architecture']}' model, "
                             f"'{wanted}' was asked for")
    ratio = float(scale_ratio or scale_ratio_for(info))
    align = fast.alignment(max(1, int(round(ratio))))
    windows = _read_prepare_windows(paths, info.grid, align, is_canceled)
    check = raster.DataCheck(["FINE_T1", "COARSE_T1", "COARSE_T2", "FINE_T3", "COARSE_T3"])
    for i in range(len(windows[0])):
        check.add(*(None if w is None else w[i] for w in windows))
    check.check()
    say(f"preparing ({meta['architecture']}, scale ratio {ratio:g}, device {device})")
    state = prepare(model, meta, *windows, scale_ratio=ratio, adapt_epochs=adapt_epochs,
                    use_cnn=use_cnn, is_canceled=is_canceled, device=device,
                    scene_pixels=info.grid.width * info.grid.height, log=log,
                    progress=lambda f: progress(0.2 * f))
    del windows
    progress(0.2)
    tile_size = tiling.whole_block_tile(tile_size, tile_multiple(state))
    total = tiling.tile_count(info.grid.width, info.grid.height, tile_size)
    say(f"fusing {total} tile(s) of {tile_size} px (halo {halo(state)} px)")
    h = halo(state)
    tile_progress = tiling.TileProgress(lambda f: progress(0.2 + 0.8 * f), total,
                                        info.band_count * (2 if fine_t3 else 1))
    tiling.process_files(paths, output, fine_t1,
                         lambda *a: fuse_tile(state, *a, margin=h,
                                              band_done=tile_progress.step),
                         h, tile_size, progress=tile_progress.tile_done,
                         is_canceled=is_canceled)
    seconds = time.time() - started
    cnn = bool(state.use_cnn) if state.architecture == "stfnet" else True
    summary = {"architecture": state.architecture, "cnn_used": cnn, "scale_ratio": ratio,
               "unmixing_confidence": round(state.alpha, 3), "pairs": 2 if fine_t3 else 1,
               "device": str(device), "tile_size": tile_size, "tiles": total,
               "seconds": round(seconds, 2), "output": output,
               "model": {k: v for k, v in state.metadata.items() if k != "history"}}
    say(f"done in {seconds:.1f} s")
    return summary
