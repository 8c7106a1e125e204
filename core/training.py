"""Training of the fusion networks (deterministic, cancelable, CPU by default).

``train(pairs, architecture, ...)``:

- ``"paper"``: ``pairs`` is a list of ``(fine, coarse)`` arrays (same bands). Training
  examples are 3x3 coarse patches -> the fine values of the centre pixel, **sampled by
  colour, edge and pixel statistics**: every valid pixel is put in a stratum by quantile bins
  of brightness (mean over bands of the fine image), edge strength (Roberts-cross gradient
  magnitude) and local variance (3x3), and the same number of patches is drawn from each
  stratum, so edges and texture are as present as uniform fields. 10 % of the patches are held
  out for the validation loss. Table 1 defaults: MSE, 50 epochs, SGD momentum 0.9, weight
  decay 1e-4, lr 0.01, batch 64.
- ``"stfnet"``: needs several dates of the same scene: ``pairs`` is a list of ``(fine,
  coarse)`` of one scene (dates in any order), or a list of such lists (several scenes). Every
  ordered couple of dates (i -> j) is a training example: the physics candidates computed from
  (F_i, C_i, C_j) in, the true change F_j - F_i out (per band, normalised). An epoch is
  ``steps_per_epoch`` batches of random 32x32 patches; validation uses fixed held-out patches.

Same seed + data + device -> same weights (seeded generators,
``torch.use_deterministic_algorithms``).
"""
import datetime
import itertools
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import raster, stfnet, stfnet_fields, tiling
from . import scale_ratio as ratio_rule
from .errors import InputError
from .models import FORMAT_VERSION, build_model, resolve_architecture, save_model
from .torch_check import require_torch

PAPER_MAX_PATCHES = 20000
PAPER_BINS = 4


class _Deterministic:
    def __init__(self, torch, seed):
        self.torch, self.seed = torch, seed

    def __enter__(self):
        t = self.torch
        self.previous = t.are_deterministic_algorithms_enabled()
        t.use_deterministic_algorithms(True, warn_only=True)
        t.manual_seed(self.seed)
        return self

    def __exit__(self, *exc):
        self.torch.use_deterministic_algorithms(self.previous)


def finite_loss(loss: float, epoch: int, learning_rate: float) -> float:
    """``loss``, or ``InputError`` when training has diverged (NaN or infinite loss): a
    model trained on would predict nothing but nodata, so none is saved."""
    if not math.isfinite(loss):
        raise InputError("LEARNING_RATE", f"training diverged in epoch {epoch + 1}: the loss "
                                          f"is {loss} with learning rate {learning_rate:g}; "
                                          "lower LEARNING_RATE (default 0.01) and train "
                                          "again. No model file was written.")
    return loss


# ----------------------------------------------------------------------------- paper

def stratified_patches(fine: np.ndarray, coarse: np.ndarray, count: int,
                       rng: np.random.Generator, bins: int = PAPER_BINS):
    """Centres (rows, cols) of 3x3 patches drawn evenly from colour/edge/variance strata."""
    b, h, w = fine.shape
    valid = np.isfinite(fine).all(0) & np.isfinite(coarse).all(0)
    inner = np.zeros_like(valid)
    inner[1:-1, 1:-1] = True
    valid &= inner
    f = np.nan_to_num(fine).mean(0)
    bright = f
    edge = np.zeros_like(f)
    edge[:-1, :-1] = np.abs(f[:-1, :-1] - f[1:, 1:]) + np.abs(f[:-1, 1:] - f[1:, :-1])
    pad = np.pad(f, 1, mode="edge")
    stack = np.stack([pad[i:i + h, j:j + w] for i in range(3) for j in range(3)])
    var = stack.var(0)
    ys, xs = np.nonzero(valid)
    if len(ys) == 0:
        return ys, xs
    keys = np.zeros(len(ys), dtype=np.int64)
    for feature in (bright, edge, var):
        v = feature[ys, xs]
        edges = np.quantile(v, np.linspace(0, 1, bins + 1)[1:-1])
        keys = keys * bins + np.searchsorted(edges, v)
    strata = [np.nonzero(keys == k)[0] for k in np.unique(keys)]
    per = max(1, count // len(strata))
    chosen = np.concatenate([rng.choice(s, min(per, len(s)), replace=False) for s in strata])
    if len(chosen) < count:   # top up from all pixels
        rest = np.setdiff1d(np.arange(len(ys)), chosen)
        chosen = np.concatenate([chosen, rng.choice(rest, min(count - len(chosen), len(rest)),
                                                    replace=False)])
    chosen = np.sort(chosen)
    return ys[chosen], xs[chosen]


def _paper_data(pairs, rng, max_patches):
    xs, ys = [], []
    per_pair = max(1, max_patches // len(pairs))
    for fine, coarse in pairs:
        r, c = stratified_patches(fine, coarse, per_pair, rng)
        cz = np.nan_to_num(coarse)
        patches = np.stack([cz[:, r + i - 1, c + j - 1] for i in range(3) for j in range(3)],
                           axis=-1)                                 # bands, n, 9
        xs.append(np.moveaxis(patches, 1, 0).reshape(-1, fine.shape[0], 3, 3))
        ys.append(fine[:, r, c].T)
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.float32)


def _train_paper(pairs, epochs, batch_size, lr, momentum, weight_decay, seed, progress,
                 is_canceled, initial_model=None, max_patches=PAPER_MAX_PATCHES, device="cpu"):
    torch = require_torch()
    rng = np.random.default_rng(seed)
    band_count = pairs[0][0].shape[0]
    x, y = _paper_data(pairs, rng, max_patches)
    if len(x) < 10:
        raise ValueError("too few valid pixels to train on")
    order = rng.permutation(len(x))
    n_val = max(1, len(x) // 10)
    val, tr = order[:n_val], order[n_val:]
    model = initial_model if initial_model is not None else build_model("paper", band_count)
    model.cpu()
    if initial_model is None:
        model.in_mean.copy_(torch.from_numpy(x[tr].mean((0, 2, 3))))
        model.in_std.copy_(torch.from_numpy(x[tr].std((0, 2, 3)) + 1e-4))
        model.out_mean.copy_(torch.from_numpy(y[tr].mean(0)))
        model.out_std.copy_(torch.from_numpy(y[tr].std(0) + 1e-4))
    X = ((torch.from_numpy(x) - model.in_mean[None, :, None, None])
         / model.in_std[None, :, None, None])
    Y = (torch.from_numpy(y) - model.out_mean[None]) / model.out_std[None]
    model.to(device)
    X, Y = X.to(device), Y.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                          weight_decay=weight_decay)
    loss_fn = torch.nn.MSELoss()
    history = {"train_loss": [], "val_loss": [], "loss_units": "standardised fine reflectance"}
    for epoch in range(epochs):
        model.train()
        perm = tr[rng.permutation(len(tr))]
        total = 0.0
        for i in range(0, len(perm), batch_size):
            tiling.check_canceled(is_canceled)
            idx = torch.from_numpy(perm[i:i + batch_size]).to(device)
            loss = loss_fn(model(X[idx]), Y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += finite_loss(loss.item(), epoch, lr) * len(idx)
        model.eval()
        with torch.no_grad():
            vidx = torch.from_numpy(val).to(device)
            vloss = loss_fn(model(X[vidx]), Y[vidx]).item()
        history["train_loss"].append(total / len(perm))
        history["val_loss"].append(finite_loss(vloss, epoch, lr))
        if progress:
            progress((epoch + 1) / epochs)
    return model, history


# ----------------------------------------------------------------------------- stfnet

def _as_scenes(pairs) -> List[List[Tuple[np.ndarray, np.ndarray]]]:
    if pairs is None:
        return []
    if pairs and isinstance(pairs[0], (list, tuple)) and len(pairs[0]) and \
            isinstance(pairs[0][0], (list, tuple)):
        return [list(s) for s in pairs]
    return [list(pairs)]


def stfnet_examples(pairs, scale_ratio: float, is_canceled=None, seed: int = 0,
                    **physics) -> List[Tuple[np.ndarray, np.ndarray]]:
    """(features (bands, C, H, W), target (bands, 1, H, W)) for every ordered couple of dates.

    Features are those of ``stfnet.stfnet_inputs`` (candidates shrunk by the scene's
    unmixing confidence, as at fuse time); the target is (F_j - F_i) / band scale, NaN where
    invalid.
    """
    torch = require_torch()
    opts = dict(stfnet.PHYSICS_DEFAULTS)
    opts.update(physics)
    block = max(1, int(round(scale_ratio)))
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa
    examples = []
    for scene in _as_scenes(pairs):
        for (fi, ci), (fj, cj) in itertools.permutations(scene, 2):
            tiling.check_canceled(is_canceled)
            stats = stfnet.pair_stats([fi], [ci], [cj], scale_ratio, int(opts["classes"]),
                                      seed)
            stats_t = stats.tensors(torch, "cpu")
            valid = raster.valid_mask(fi, ci, cj, fj)
            coarse = valid.sum() / float(scale_ratio) ** 2
            alpha = stfnet.unmixing_confidence(coarse, len(stats.centres), int(opts["window"]))
            pair = stfnet_fields.PairFields(as_tensor(fi), as_tensor(ci), as_tensor(cj),
                                            stats_t, block, int(opts["window"]),
                                            float(opts["ridge"]), float(opts["eps"]), alpha)
            x = stfnet.stfnet_inputs(torch, pair, as_tensor(fi), stats_t["band_scale"]).numpy()
            y = (fj - fi) / stats.band_scale[:, None, None]
            y = np.where(valid, y, np.nan).astype(np.float32)[:, None]
            examples.append((np.ascontiguousarray(x, dtype=np.float32), y))
    if not examples:
        raise ValueError("stfnet training needs at least two dates of one scene")
    return examples


def _patch_batch(examples, rng, batch, patch):
    e = examples[rng.integers(len(examples))]
    x, y = e
    h, w = x.shape[-2:]
    p = min(patch, h, w)
    xs, ys = [], []
    for _ in range(batch):
        b = rng.integers(x.shape[0])
        i, j = rng.integers(h - p + 1), rng.integers(w - p + 1)
        xs.append(x[b, :, i:i + p, j:j + p])
        ys.append(y[b, :, i:i + p, j:j + p])
    return np.stack(xs), np.stack(ys)


def _run(model, torch, x, target):
    """The stfnet forward pass with the validity mask of the target."""
    return model(x, torch.isfinite(target).to(x.dtype))


def _masked_mse(torch, pred, target):
    m = torch.isfinite(target)
    if not bool(m.any()):
        return pred.sum() * 0.0
    return ((pred[m] - target[m]) ** 2).mean()


def _train_stfnet(pairs, epochs, batch_size, lr, momentum, weight_decay, seed, progress,
                  is_canceled, initial_model=None, scale_ratio=16.0, steps_per_epoch=20,
                  patch=32, examples=None, device="cpu", **physics):
    torch = require_torch()
    rng = np.random.default_rng(seed)
    if examples is None:
        examples = stfnet_examples(pairs, scale_ratio, is_canceled, seed, **physics)
    val_rng = np.random.default_rng(seed + 1)
    val = [_patch_batch(examples, val_rng, batch_size, patch) for _ in range(4)]
    val = [(torch.from_numpy(a).to(device), torch.from_numpy(b).to(device)) for a, b in val]
    model = initial_model if initial_model is not None else build_model("stfnet")
    model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                          weight_decay=weight_decay)
    history = {"train_loss": [], "val_loss": [], "loss_units": "(fine change / band std)^2"}
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for _ in range(steps_per_epoch):
            tiling.check_canceled(is_canceled)
            xb, yb = _patch_batch(examples, rng, batch_size, patch)
            xb, yb = torch.from_numpy(xb).to(device), torch.from_numpy(yb).to(device)
            loss = _masked_mse(torch, _run(model, torch, xb, yb), yb)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += finite_loss(loss.item(), epoch, lr)
        model.eval()
        with torch.no_grad():
            vloss = float(np.mean([_masked_mse(torch, _run(model, torch, a, b), b).item()
                                  for a, b in val]))
        history["train_loss"].append(total / steps_per_epoch)
        history["val_loss"].append(finite_loss(vloss, epoch, lr))
        if progress:
            progress((epoch + 1) / epochs)
    return model, history


def train(pairs, architecture: str, epochs: int = 50, batch_size: int = 64,
          learning_rate: float = 0.01, momentum: float = 0.9, weight_decay: float = 1e-4,
          device: str = "cpu", seed: int = 0, progress: Optional[Callable[[float], None]] = None,
          is_canceled: Optional[Callable[[], bool]] = None, initial_model=None,
          **options) -> Tuple[object, Dict]:
    """Train a network; returns ``(model, history)`` with per-epoch train/val losses.

    ``initial_model`` fine-tunes an existing network instead of a fresh one. Extra
    ``options``: paper — ``max_patches``; stfnet — ``scale_ratio``, ``steps_per_epoch``,
    ``patch`` and physics options (``classes``, ``window``, ``ridge``, ``eps``).
    """
    torch = require_torch()
    architecture = resolve_architecture(architecture)
    device = str(device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but this PyTorch has no usable GPU")
    with _Deterministic(torch, seed):
        if architecture == "paper":
            model, history = _train_paper(pairs, epochs, batch_size, learning_rate, momentum,
                                          weight_decay, seed, progress, is_canceled,
                                          initial_model, device=device, **options)
        elif architecture == "stfnet":
            model, history = _train_stfnet(pairs, epochs, batch_size, learning_rate, momentum,
                                           weight_decay, seed, progress, is_canceled,
                                           initial_model, device=device, **options)
        else:
            raise ValueError(f"unknown architecture '{architecture}'")
    model.eval()
    history.update(architecture=architecture, epochs=epochs, batch_size=batch_size,
                   learning_rate=learning_rate, momentum=momentum, weight_decay=weight_decay,
                   seed=seed)
    return model, history


# ----------------------------------------------------------------------------- files

@dataclass
class TrainResult:
    metadata: Dict
    history: Dict


def _read_pairs(pairs, log):
    """Windows of every (fine, coarse) GeoTIFF pair of one grid: whole images when small, else
    at most ``tiling.SAMPLE_MAX_WINDOWS`` windows of ``tiling.SAMPLE_WINDOW`` pixels at the
    same places in every date (bounded memory). Returns (windows per date, info, ratio)."""
    if not pairs:
        raise ValueError("give at least one (fine, coarse) pair")
    info = raster.check_same_grid(pairs[0][0], [p for pair in pairs for p in pair])
    rule = ratio_rule.resolve(pairs[0][0], [c for _, c in pairs])
    ratio = rule.value
    if log:
        log(rule.note)
    wins = tiling.sample_windows((info.grid.height, info.grid.width),
                                  align=max(1, int(round(ratio))))
    if log and len(wins) > 1:
        log(f"large rasters: training on {len(wins)} windows of {tiling.SAMPLE_WINDOW} px")
    dates = [[(raster.read_window(f, x0, y0, w, h), raster.read_window(c, x0, y0, w, h))
              for (y0, x0, h, w) in wins] for f, c in pairs]
    return dates, info, ratio


def train_files(pairs: Sequence[Tuple[str, str]], output_model: str,
                architecture: str = "stfnet", epochs: int = 50, batch_size: int = 64,
                learning_rate: float = 0.01, momentum: float = 0.9,
                weight_decay: float = 1e-4, device: str = "cpu", seed: int = 0,
                progress: Optional[Callable[[float], None]] = None,
                is_canceled: Optional[Callable[[], bool]] = None,
                log: Optional[Callable[[str], None]] = None, **options) -> TrainResult:
    """Train a model on (fine, coarse) GeoTIFF pairs of one scene (one grid) and save it.

    ``architecture``: "default" (= stfnet) or "stfnet" needs at least two dates (every
    ordered couple of dates is an example); "paper" learns coarse 3x3 patches -> fine centre
    values on every pair. Returns ``TrainResult(metadata, history)``; the history holds the
    per-epoch train/val losses. Same seed + data + device -> same weights.
    """
    architecture = resolve_architecture(architecture)
    say = log or (lambda _m: None)
    dates, info, ratio = _read_pairs(list(pairs), log)
    tiling.check_canceled(is_canceled)
    kwargs = dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                  momentum=momentum, weight_decay=weight_decay, device=device, seed=seed,
                  progress=progress, is_canceled=is_canceled)
    if architecture == "paper":
        flat = [p for d in dates for p in d]
        model, history = train(flat, "paper", **kwargs, **options)
        extra = {"band_agnostic": False, "band_count": info.band_count,
                 "band_names": list(info.band_names),
                 "scaling": "per band: coarse input and fine output standardised with the "
                            "training mean/std (stored in the model)"}
    else:
        if len(dates) < 2:
            raise ValueError("the default (stfnet) model learns how a scene changes between "
                             "dates: give at least two (fine, coarse) pairs")
        scenes = [[d[i] for d in dates] for i in range(len(dates[0]))]
        say(f"computing the candidates of {len(dates) * (len(dates) - 1)} date couple(s)")
        examples = stfnet_examples(scenes, ratio, is_canceled, seed)
        model, history = train(None, "stfnet", examples=examples, scale_ratio=ratio,
                               **kwargs, **options)
        extra = {"band_agnostic": True, "band_count": None, "band_names": None,
                 "scaling": "per band: channels divided by the scene-wide std of the fine "
                            "t1 band", "use_cnn_by_default": True}
    meta = {"architecture": architecture, "format_version": FORMAT_VERSION, "trained": True,
            "training": {k: history[k] for k in ("epochs", "batch_size", "learning_rate",
                                                 "momentum", "weight_decay", "seed")},
            "device": str(device),
            "final_train_loss": history["train_loss"][-1],
            "final_val_loss": history["val_loss"][-1],
            "history": {"train_loss": history["train_loss"], "val_loss": history["val_loss"]},
            "training_data": f"{len(dates)} (fine, coarse) pair(s) of one "
                             f"{info.grid.width}x{info.grid.height} grid: "
                             + "; ".join(f"{f} / {c}" for f, c in pairs),
            "scale_ratio": ratio,
            "date": datetime.datetime.now().isoformat(timespec="seconds"), **extra}
    save_model(output_model, model, meta)
    say(f"saved {output_model}: train loss {history['train_loss'][-1]:.4g}, "
        f"val loss {history['val_loss'][-1]:.4g}")
    return TrainResult(meta, history)
