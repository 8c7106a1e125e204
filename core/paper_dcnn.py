"""The paper's 3x3-patch regression DCNN as a fusion method of ``core.methods``.

The paper's 3x3-patch regression DCNN maps a coarse image to a fine-like
intermediate image P; P1 = net(C1), P2 = net(C2) and high-pass modulation brings in the prior
fine image: F2 = P2 + (F1 - P1) * clip(P2 / P1); with two pairs the two HPM images are weighted
by the inverse local |P2 - Pi|.

The network is ``models.PaperDCNN``; ``core.fusion`` trains it at fuse time on the given
pair(s) when the model file is not a trained one. All of it is local (``halo(state)``), so a
tiled run equals an untiled run.
"""
from dataclasses import dataclass
from typing import Callable, ClassVar, Optional

import numpy as np

from . import box_filters, raster, tiling
from .torch_check import require_torch

PREPARE_SHARE = 0.2  # of a run's progress


@dataclass
class PaperSettings:
    model: object                 # models.PaperDCNN, trained
    scale_ratio: float = 16.0     # coarse pixel / fine pixel (the pair weights' window)
    device: str = "cpu"


@dataclass
class PaperState:
    METHOD: ClassVar[str] = "paper"
    model: object
    scale_ratio: float
    device: str = "cpu"


def prepare(pairs, coarse_t2, settings: PaperSettings,
            progress: Callable[[float], None] = tiling.no_progress,
            is_canceled: Callable[[], bool] = tiling.never_canceled,
            log: Optional[Callable[[str], None]] = None) -> PaperState:
    """No global statistics: the trained network on its device."""
    settings.model.to(str(settings.device))
    settings.model.eval()
    progress(1.0)
    return PaperState(settings.model, float(settings.scale_ratio), str(settings.device))


def halo(state: PaperState) -> int:
    # gap filling + 3x3 patch + pair weights
    return 2 + box_filters.footprint_radius(state.scale_ratio) + 1


def tile_multiple(state: PaperState) -> int:
    return 1


def _paper_intermediate(state: PaperState, coarse: np.ndarray) -> np.ndarray:
    """The paper network applied to every 3x3 patch (one output pixel per patch)."""
    torch = require_torch()
    model = state.model
    b, h, w = coarse.shape
    # one NaN ring around the window, then every invalid pixel takes the mean of the valid
    # pixels of its 3x3 neighbourhood: the same rule inside a tile and at the image border
    padded = np.pad(coarse, ((0, 0), (1, 1), (1, 1)), constant_values=np.nan)
    valid = np.isfinite(padded).all(0)
    fill = np.nan_to_num(box_filters.box_mean(np.where(valid, padded, 0.0), valid, 1))
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
    r = box_filters.footprint_radius(ratio)
    ea = box_filters.box_mean(np.nan_to_num(np.abs(c2 - ca).mean(0)), valid, r)
    eb = box_filters.box_mean(np.nan_to_num(np.abs(c2 - cb).mean(0)), valid, r)
    wa, wb = 1.0 / (ea + eps), 1.0 / (eb + eps)
    return wa / (wa + wb)


def predict_tile(state: PaperState, window, is_canceled=None) -> np.ndarray:
    """Predicted fine image at t2 over a ``methods.TileWindow`` (NaN where invalid)."""
    c2 = window.coarse_t2
    valid = raster.valid_mask(c2, *(a for pair in window.pairs for a in pair))
    (f1, c1), *second = window.pairs
    prediction, p1, p2 = _paper_hpm(state, f1, c1, c2)
    if second:
        f3, c3 = second[0]
        prediction_3, p3, _ = _paper_hpm(state, f3, c3, c2)
        weight = _paper_pair_weights(p2, p1, p3, valid, state.scale_ratio)
        prediction = weight * prediction + (1 - weight) * prediction_3
    return np.where(valid, prediction, np.nan).astype(np.float32)
