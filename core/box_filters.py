"""Box filters in numpy: window sums and NaN-aware window means over (2r+1)^2 pixels.

The one family of moving box filters of the numpy methods (FSDAF's homogeneity index, the
paper model's gap filling and pair weights); ``stfnet_fields.box_sum`` is its torch member
(same window, zero outside) for the default model's fields on any device.

- ``box_sum``: window sums with zero outside (cumulative sums in float64: exact counts).
- ``box_mean``: NaN-aware moving average (cumulative sums in float64, O(1) per pixel); pixels
  outside the array or NaN count as absent, so a tile with a large enough halo gives exactly
  the same core as the whole image.
- ``footprint_radius``: the radius in fine pixels of one coarse pixel's footprint.
"""
from typing import Optional

import numpy as np


def box_sum(x: np.ndarray, radius: int) -> np.ndarray:
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
        count = box_sum(valid.astype(np.float64), radius)
    s = box_sum(np.where(valid, x, 0.0), radius)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = s / count
    return np.where(count > 0.5, out, np.nan)


def footprint_radius(ratio: float) -> int:
    """Half-width (fine pixels) of a window about one coarse pixel wide."""
    return max(1, int(round(ratio / 2.0)))
