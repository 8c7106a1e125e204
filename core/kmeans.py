"""Deterministic k-means of a pixel sample (k-means++ seeding, then Lloyd iterations until no
label changes), shared by FSDAF's classification and the default fusion model's classes."""
from typing import Callable, Optional

import numpy as np

from .tiling import check_canceled

CHUNK = 100000        # samples per block of the distance computation


def kmeans(samples: np.ndarray, k: int, iterations: int = 30, seed: int = 0,
           is_canceled: Optional[Callable[[], bool]] = None) -> np.ndarray:
    """Centres (k, features), float64, of ``samples`` (n, features); same seed, same result.

    An empty cluster moves to the worst-fitted sample. ``is_canceled`` is checked before
    every seeding step and iteration (``tiling.Canceled``)."""
    x = np.asarray(samples, np.float64)
    n = x.shape[0]
    if n == 0:
        raise ValueError("no valid pixel to classify")
    k = min(k, n)
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(n)]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        check_canceled(is_canceled)
        total = d2.sum()
        i = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
        centres.append(x[i])
        d2 = np.minimum(d2, ((x - x[i]) ** 2).sum(1))
    c = np.array(centres)
    labels = None
    for _ in range(iterations):
        check_canceled(is_canceled)
        dist = squared_distances(x, c)
        new = dist.argmin(1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            c[j] = members.mean(0) if len(members) else x[dist.min(1).argmax()]
    return c


def squared_distances(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(n, k) squared Euclidean distances, computed in blocks of ``CHUNK`` samples."""
    return np.concatenate([((x[i:i + CHUNK, None, :] - centres[None]) ** 2).sum(2)
                           for i in range(0, len(x), CHUNK)])
