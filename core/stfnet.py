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
  weighted per pixel by the inverse of the local coarse difference |C2 - Ci| (block means);
  5. trust (``core/trust.py``, ``use_trust``): each pair's consistency and temporal relation
     to C2 at the coarse scale (scene-wide in the state, local per tile) move the prediction
     towards C2 where the pair cannot be trusted, and drop an inconsistent second pair;
     ``uncertainty``: the expected absolute error follows the prediction as further bands.

All of it is local (a finite halo, ``halo(state)``); global quantities live in
``StfnetState`` so a tiled run equals an untiled run (tiles start on the block grid).
The candidate fields are ``core/stfnet_fields.py``; training (``core/training.py``) uses
the same statistics and CNN inputs (``pair_stats``, ``stfnet_inputs``).
"""
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import acquisition, raster, stfnet_fields, tiling, trust
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
    use_trust: bool = True             # pair consistency and temporal trust (core/trust.py)
    uncertainty: bool = False          # the expected absolute error as further bands


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
    pair_trust: List[trust.PairTrust] = field(default_factory=list)   # empty: no trust rule
    uncertainty: bool = False

    @property
    def block(self) -> int:
        return max(1, int(round(self.scale_ratio)))

    @property
    def layers(self) -> Tuple[str, ...]:
        """What ``predict_tile`` returns, ``band_count`` bands each (``methods.layers``)."""
        return ("prediction", "uncertainty") if self.uncertainty else ("prediction",)


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
    masks = [raster.valid_mask(*w) for w in zip(windows_f, windows_c, windows_c2)]
    prepared = pair_classes(windows_f, masks, classes, seed, is_canceled)
    return stats_for(prepared, masks, windows_c, windows_c2, ratio, is_canceled)


@dataclass
class PreparedPair:
    """The part of a pair's statistics that does not depend on C2 (``pair_classes``): a
    series prepares each pair once for all its dates (``prepare_pair``) and only adds the
    scene-wide class changes towards each date's coarse image (``prepare_date``)."""
    centres: np.ndarray          # (k, bands) k-means centres on standardised F
    mean: np.ndarray             # (bands,)
    std: np.ndarray              # (bands,)
    band_std: np.ndarray         # (bands,) std of F per band
    labels: List[np.ndarray]     # int8 class of every pixel of the windows (0 where masked)
    valid: List[np.ndarray] = field(default_factory=list)   # where F and C are valid


def pair_classes(windows_f: Sequence[np.ndarray], masks: Sequence[np.ndarray], classes: int,
                 seed: int, is_canceled=None) -> PreparedPair:
    """k-means classes of F's pixels where ``masks`` (standardised, on a subsample), and the
    class of every pixel of the windows."""
    torch = require_torch()
    rng = np.random.default_rng(seed)
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
    centres_t = torch.as_tensor(centres, dtype=torch.float32)
    mean_t, std_t = (torch.as_tensor(a, dtype=torch.float32) for a in (mean, std))
    labels = []
    for f, v in zip(windows_f, masks):
        tiling.check_canceled(is_canceled)
        fine = torch.from_numpy(np.where(v, f, 0).astype(np.float32))
        labels.append(stfnet_fields.classify(fine, centres_t, mean_t, std_t)
                      .numpy().astype(np.int8))
    return PreparedPair(centres, mean, std, band_std, labels)


def stats_for(prepared: PreparedPair, masks: Sequence[np.ndarray],
              windows_c: Sequence[np.ndarray], windows_c2: Sequence[np.ndarray], ratio: float,
              is_canceled=None) -> PairStats:
    """The pair's statistics for the coarse image C2 over the pixels of ``masks``: its
    classes and the scene-wide class changes of C2 - C, the least squares of the block-mean
    coarse change on the block class fractions, accumulated window by window as normal
    equations."""
    torch = require_torch()
    k, bands = len(prepared.centres), windows_c[0].shape[0]
    block = max(1, int(round(ratio)))
    normal_matrix, normal_rhs = np.zeros((k, k)), np.zeros((k, bands))
    for labels, c, c2, v in zip(prepared.labels, windows_c, windows_c2, masks):
        tiling.check_canceled(is_canceled)
        coarse_change = np.where(v, c2 - c, 0).astype(np.float32)
        valid = torch.from_numpy(v)
        one_hot = torch.nn.functional.one_hot(torch.from_numpy(labels).long(), k) \
            .permute(2, 0, 1).float() * valid
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
    return PairStats(prepared.centres, prepared.mean, prepared.std, global_change,
                     prepared.band_std + 1e-4, sum(int(v.sum()) for v in masks))


def _sample_windows(source, settings: StfnetSettings) -> List[Tuple[int, int, int, int]]:
    """The windows (y0, x0, h, w) ``prepare`` reads, on the block grid."""
    block = max(1, int(round(float(settings.scale_ratio))))
    return tiling.sample_windows((source.height, source.width),
                                 align=stfnet_fields.alignment(block))


def _read(source, windows, is_canceled) -> List[np.ndarray]:
    tiling.check_canceled(is_canceled)
    return [source.window(x0, y0, w, h) for (y0, x0, h, w) in windows]


def prepare(pairs, coarse_t2, settings: StfnetSettings,
            progress: Callable[[float], None] = tiling.no_progress,
            is_canceled: Callable[[], bool] = tiling.never_canceled,
            log: Optional[Callable[[str], None]] = None) -> StfnetState:
    """Class centres, scene-wide class changes and the unmixing confidence of every pair,
    from at most ``tiling.SAMPLE_MAX_WINDOWS`` windows of the sources (the whole image when
    small), so memory depends on the window size only."""
    windows = _sample_windows(coarse_t2, settings)
    c2 = _read(coarse_t2, windows, is_canceled)
    stats, trusts = [], []
    for fine, coarse in pairs:
        windows_f, windows_c = _read(fine, windows, is_canceled), _read(coarse, windows,
                                                                         is_canceled)
        stats.append(pair_stats(windows_f, windows_c, c2, float(settings.scale_ratio),
                                int(settings.options["classes"]), settings.seed, is_canceled))
        trusts.append(_pair_trust(windows_f, windows_c, c2, settings,
                                  _gap_days(coarse, coarse_t2)))
    state = _state(stats, trusts, pairs[0][0].band_count, windows, coarse_t2, settings, log)
    progress(1.0)
    return state


def prepare_pair(pair, settings: StfnetSettings,
                 is_canceled: Callable[[], bool] = tiling.never_canceled) -> PreparedPair:
    """``methods`` series extension: the classes of one pair (fine, coarse sources), from
    F's pixels where F and C are valid, for any number of dates (``prepare_date``)."""
    fine, coarse = pair
    windows = _sample_windows(fine, settings)
    windows_f = _read(fine, windows, is_canceled)
    masks = [raster.valid_mask(f, c) for f, c in zip(windows_f, _read(coarse, windows,
                                                                       is_canceled))]
    prepared = pair_classes(windows_f, masks, int(settings.options["classes"]), settings.seed,
                            is_canceled)
    prepared.valid = masks
    return prepared


def prepare_date(prepared: Sequence[PreparedPair], pairs, coarse_t2, settings: StfnetSettings,
                 is_canceled: Callable[[], bool] = tiling.never_canceled,
                 log: Optional[Callable[[str], None]] = None) -> StfnetState:
    """``methods`` series extension: the state for ``pairs`` (prepared by ``prepare_pair``)
    and the coarse image ``coarse_t2``: each pair's classes with the scene-wide class changes
    towards C2 (least squares over the sample windows, no k-means)."""
    windows = _sample_windows(coarse_t2, settings)
    c2 = _read(coarse_t2, windows, is_canceled)
    stats, trusts = [], []
    for ready, (fine, coarse) in zip(prepared, pairs):
        masks = [v & np.isfinite(w).all(0) for v, w in zip(ready.valid, c2)]
        if not any(v.any() for v in masks):
            raise ValueError("no pixel is valid in all inputs")
        windows_c = _read(coarse, windows, is_canceled)
        stats.append(stats_for(ready, masks, windows_c, c2, float(settings.scale_ratio),
                               is_canceled))
        if settings.use_trust:      # F's block means against this date's coarse image
            trusts.append(_pair_trust(_read(fine, windows, is_canceled), windows_c, c2,
                                      settings, _gap_days(coarse, coarse_t2)))
    return _state(stats, trusts, pairs[0][0].band_count, windows, coarse_t2, settings, log)


def _pair_trust(windows_f, windows_c, windows_c2, settings: StfnetSettings,
                gap_days: Optional[float] = None) -> Optional[trust.PairTrust]:
    """``trust.PairTrust`` of a pair for C2 (None without the trust rule)."""
    if not settings.use_trust:
        return None
    return trust.pair_trust(windows_f, windows_c, windows_c2,
                            max(1, int(round(float(settings.scale_ratio)))), gap_days)


def _gap_days(coarse, coarse_t2) -> Optional[float]:
    """Days between two coarse images from their acquisition dates (the source's own date,
    e.g. from a series' DATES table, else its metadata or file name, ``core/acquisition.py``);
    None when either has no date."""
    dates = [getattr(source, "date", None) or
             (acquisition.acquisition_date(source.path) if getattr(source, "path", None)
              else None) for source in (coarse, coarse_t2)]
    return None if None in dates else float(abs((dates[1] - dates[0]).days))


def _state(stats: List[PairStats], trusts: Sequence[Optional[trust.PairTrust]],
           band_count: int, windows, coarse_t2, settings: StfnetSettings,
           log: Optional[Callable[[str], None]]) -> StfnetState:
    """The state of the pairs' statistics and trust, with the unmixing confidence of the
    scene."""
    ratio = float(settings.scale_ratio)
    state = StfnetState(settings.model, band_count, ratio, stats, use_cnn=settings.use_cnn,
                        options=dict(settings.options), device=str(settings.device),
                        pair_trust=list(trusts) if settings.use_trust else [],
                        uncertainty=settings.uncertainty)
    trust.check_pairs(state.pair_trust, log)
    seen = sum(h * w for (_, _, h, w) in windows)
    total = float(coarse_t2.width * coarse_t2.height)
    coarse_pixels = total * stats[0].valid_pixels / max(seen, 1) / ratio ** 2
    state.alpha = unmixing_confidence(coarse_pixels, len(stats[0].centres),
                                      int(settings.options["window"]))
    if log and state.alpha < 1.0:
        log(f"small scene: {coarse_pixels:.1f} coarse pixels, unmixing confidence "
            f"{state.alpha:.2f} (the rest from the guided coarse change)")
    state.model.to(state.device)
    state.model.eval()
    return state


# ----------------------------------------------------------------------------- per tile

def halo(state: StfnetState) -> int:
    """Pixels of context a tile needs on each side for an exact result: a multiple of the
    block size, so that tiles start on the block grid. The furthest reader: the candidate
    fields of the pixels the CNN reads for the pixels the expected error reads (the
    prediction 1 pixel beyond the tile), else the trust fields of those pixels or the
    expected error's inputs and their pair weights (a block on either side)."""
    block, window = state.block, int(state.options["window"])
    around = state.model.receptive_radius + 1
    need = max(stfnet_fields.reach(block, window, around),
               trust.tile_reach(block, window, 1),
               (-(-trust.error_reach(block) // block) + 1) * block)
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
                 band_done=None, cache: Optional[Dict] = None):
    """Prediction (bands, h, w) tensor (NaN where invalid) and the validity mask, band by
    band (one band's fields in memory at a time; ``band_done()`` after each). The CNN runs
    only inside ``margin`` (the caller discards the margin). ``cache``: the pair's
    ``methods.TileWindow.shared`` dict (``stfnet_fields.PairFields``)."""
    torch = require_torch()
    stats = state.pairs[index].tensors(torch, state.device)
    pair = stfnet_fields.PairFields(f1, c1, c2, stats, state.block,
                                    int(state.options["window"]), float(state.options["ridge"]),
                                    float(state.options["eps"]), state.alpha, cache)
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
    return change.add_(f1).masked_fill_(~valid, float("nan")), valid     # F1 + change


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
    on the block grid (a multiple of ``tile_multiple``); the CNN skips ``window.margin``.
    With ``state.uncertainty`` its expected absolute error follows as further bands."""
    torch = require_torch()
    as_tensor = lambda a: torch.as_tensor(np.asarray(a, np.float32),  # noqa: E731
                                          device=state.device)
    c2 = as_tensor(window.coarse_t2)
    pairs = [(as_tensor(f), as_tensor(c)) for f, c in window.pairs][:len(state.pairs)]
    (f1, c1) = pairs[0]
    # the expected error looks one pixel beyond the tile: the CNN runs one pixel further
    margin = window.margin - 1 if state.uncertainty else window.margin
    shared = window.shared or [None] * len(pairs)
    prediction, valid = _stfnet_pair(state, 0, f1, c1, c2, margin, window.step, shared[0])
    trusts = [_tile_trust(state, 0, f1, c1, c2)]
    weight = None
    if len(pairs) >= 2:
        f3, c3 = pairs[1]
        prediction_3, valid_3 = _stfnet_pair(state, 1, f3, c3, c2, margin, window.step,
                                             shared[1])
        trusts.append(_tile_trust(state, 1, f3, c3, c2))
        valid = valid & valid_3
        weight = _pair_weights(torch, c2, c1, c3, valid, state.block)
        if state.pair_trust:
            weight = trust.pair_weights(weight, *trusts, [t.weight for t in state.pair_trust])
        prediction = (weight * prediction).add_((1 - weight) * prediction_3) \
            .masked_fill_(~valid, float("nan"))
    if state.pair_trust:
        weights = [t.weight for t in state.pair_trust]
        prediction = trust.blend(prediction, c2, trust.combined_trust(trusts, weights),
                                 *_level_offsets(state, weight, c2.device))
    if state.uncertainty:
        prediction = torch.cat([prediction, _expected_error(state, prediction, pairs, c2,
                                                            weight)])
    return prediction.float().cpu().numpy()


def _level_offsets(state: StfnetState, weight, device):
    """The C - F level offset (``PairTrust.level``) the fusion carries and the part of it
    that transfers to t2 (``PairTrust.offset_transfer``): the first pair's, or both pairs'
    weighted per pixel (``weight`` of the first pair)."""
    torch = require_torch()
    offsets = [torch.as_tensor(t.level, device=device)[:, None, None]
               for t in state.pair_trust]
    carried = [offset * t.offset_transfer for offset, t in zip(offsets, state.pair_trust)]
    if weight is None or len(offsets) < 2:
        return offsets[0], carried[0]
    return (weight * offsets[0] + (1 - weight) * offsets[1],
            weight * carried[0] + (1 - weight) * carried[1])


def _tile_trust(state: StfnetState, index: int, f, c, c2) -> Optional[trust.TileTrust]:
    """The local trust fields of pair ``index`` over the window (None without trust)."""
    if not state.pair_trust:
        return None
    return trust.TileTrust(f, c, c2, state.pair_trust[index].tensors(f.device), state.block,
                           int(state.options["window"]), state.alpha)


def _expected_error(state: StfnetState, prediction, pairs, c2, weight):
    """``trust.expected_error`` of the prediction from its pairs (without trust: bias 0 and
    a real coarse sensor)."""
    torch = require_torch()
    as_tensor = lambda a: torch.as_tensor(np.asarray(a, np.float32),  # noqa: E731
                                          device=prediction.device)
    bands = prediction.shape[0]
    biases = [as_tensor(t.bias) for t in state.pair_trust] or [as_tensor(np.zeros(bands))] * 2
    noises = [as_tensor(t.coarse_noise) for t in state.pair_trust] \
        or [as_tensor(np.ones(bands))] * 2
    return trust.expected_error(prediction, pairs[:1 if weight is None else 2], c2, biases,
                                noises, weight, state.block)
