"""Numerics of the classic baselines (STARFM, FSDAF) on small synthetic arrays."""
import sys
from functools import partial

import numpy as np
import pytest

from stfusion.core import fsdaf, methods, raster, starfm, tiling

BLOCK = 8   # coarse pixel of the synthetic scenes, in fine pixels


def patches(rows=48, cols=48, bands=3, seed=0):
    """A fine image of rectangular patches of 4 land covers (distinct spectra)."""
    rng = np.random.default_rng(seed)
    spectra = np.array([[0.05, 0.08, 0.30], [0.10, 0.15, 0.20],
                        [0.20, 0.25, 0.35], [0.30, 0.30, 0.45]], np.float32)[:, :bands]
    labels = np.zeros((rows, cols), int)
    for _ in range(30):
        y, x = rng.integers(0, rows), rng.integers(0, cols)
        h, w = rng.integers(3, 14, size=2)
        labels[y:y + h, x:x + w] = rng.integers(0, 4)
    return np.ascontiguousarray(spectra[labels].transpose(2, 0, 1))


def block_mean(image, s=BLOCK):
    b, h, w = image.shape
    m = image.reshape(b, h // s, s, w // s, s).mean(axis=(2, 4))
    return np.repeat(np.repeat(m, s, axis=1), s, axis=2).astype(np.float32)


def smooth_scene(rows=56, cols=64, bands=3, seed=1):
    """Random textured scene with a change, for the tiling tests."""
    rng = np.random.default_rng(seed)
    f1 = patches(rows, cols, bands, seed) + rng.normal(0, 0.01, (bands, rows, cols))
    f1 = f1.astype(np.float32)
    f2 = f1 + np.linspace(0, 0.05, cols, dtype=np.float32)[None, None, :]
    f2[:, 10:20, 30:45] += 0.1        # a local change
    return f1, block_mean(f1), block_mean(f2)


STARFM_SMALL = starfm.StarfmParams(window=9)
FSDAF_SMALL = fsdaf.FsdafParams(scale_ratio=BLOCK, window=9, tps_radius=1)


def predict(method, f1, c1, c2, f3=None, c3=None, params=None, **keywords):
    """Whole-array run of a registered method (prepare + the tiled driver)."""
    return methods.fuse_arrays(method, params, f1, c1, c2, f3, c3, **keywords)


def test_no_change_gives_f1():
    f1 = patches()
    c1 = block_mean(f1)
    out = predict("starfm", f1, c1, c1.copy(), params=STARFM_SMALL)
    np.testing.assert_allclose(out, f1, atol=1e-6)
    out = predict("fsdaf", f1, c1, c1.copy(), params=FSDAF_SMALL)
    np.testing.assert_allclose(out, f1, atol=1e-6)


def test_uniform_change_is_added():
    f1 = patches()
    c1 = block_mean(f1)
    change = np.array([0.02, -0.03, 0.05], np.float32)[:, None, None]
    c2 = c1 + change
    out = predict("starfm", f1, c1, c2, params=STARFM_SMALL)
    np.testing.assert_allclose(out, f1 + change, atol=1e-5)
    out = predict("fsdaf", f1, c1, c2, params=FSDAF_SMALL)
    np.testing.assert_allclose(out, f1 + change, atol=1e-5)


def test_nan_pixels_propagate():
    f1, c1, c2 = smooth_scene()
    f1[1, 5, 7] = np.nan
    c1[:, 30:33, 40:42] = np.nan
    c2[0, 50, 60] = np.nan
    invalid = ~raster.valid_mask(f1, c1, c2)
    for out in (predict("starfm", f1, c1, c2, params=STARFM_SMALL),
                predict("fsdaf", f1, c1, c2, params=FSDAF_SMALL)):
        assert np.isnan(out[:, invalid]).all()
        assert np.isfinite(out[:, ~invalid]).all()


def test_tiled_equals_untiled():
    f1, c1, c2 = smooth_scene()
    f1[:, 20:23, 5:9] = np.nan
    f3, c3 = f1 + 0.01, c1 + 0.012
    for method, kwargs in ((partial(predict, "starfm"), {"params": STARFM_SMALL}),
                           (partial(predict, "starfm"),
                            {"f3": f3, "c3": c3, "params": STARFM_SMALL}),
                           (partial(predict, "fsdaf"), {"params": FSDAF_SMALL})):
        whole = method(f1, c1, c2, tile_size=None, **kwargs)
        tiled = method(f1, c1, c2, tile_size=20, **kwargs)
        np.testing.assert_allclose(tiled, whole, atol=1e-5)
        assert (np.isnan(tiled) == np.isnan(whole)).all()


def test_halo_covers_dependencies():
    """A pixel's prediction does not change when data beyond the halo changes."""
    f1, c1, c2 = smooth_scene(rows=64, cols=64)
    state = methods.prepare("fsdaf", [(f1, c1)], c2, FSDAF_SMALL)
    h = fsdaf.halo(state)
    y, x = 32, 32   # a pixel whose window [y-h, y+h] stays inside the image
    window = (slice(None), slice(y - h, y + h + 1), slice(x - h, x + h + 1))
    small = fsdaf.predict_window(state, f1[window], c1[window], c2[window],
                                 origin=(x - h, y - h), margin=h)
    big = fsdaf.predict_window(state, f1, c1, c2, origin=(0, 0))
    np.testing.assert_allclose(small[:, h, h], big[:, y, x], atol=1e-6)


def test_two_pair_starfm():
    f1 = patches()
    c1 = block_mean(f1)
    change = np.float32(0.03)
    # both pairs consistent with the same change: the prediction is F1 + change
    c2 = c1 + change
    f3, c3 = f1 + 2 * change, c1 + 2 * change
    out = predict("starfm", f1, c1, c2, f3, c3, params=STARFM_SMALL)
    np.testing.assert_allclose(out, f1 + change, atol=1e-5)

    # a duplicated pair changes nothing (same candidates, doubled weights)
    f1, c1, c2 = smooth_scene()
    params = starfm.StarfmParams(window=9, temporal_filter=True)
    one = predict("starfm", f1, c1, c2, params=params)
    two = predict("starfm", f1, c1, c2, f1, c1, params=params)
    np.testing.assert_allclose(two, one, atol=1e-5)

    # two different pairs: a weighted combination of the two one-pair predictions,
    # closer to the pair whose coarse image is nearer to t2
    f3 = f1 + 0.02
    c3 = c2 + 0.001
    a = predict("starfm", f1, c1, c2, params=params)
    b = predict("starfm", f3, c3, c2, params=params)
    both = predict("starfm", f1, c1, c2, f3, c3, params=params)
    assert np.mean(np.abs(both - b)) < np.mean(np.abs(both - a))
    with pytest.raises(ValueError):
        predict("starfm", f1, c1, c2, f3, None)


def test_cancel_and_progress():
    f1, c1, c2 = smooth_scene()
    seen = []
    predict("starfm", f1, c1, c2, params=STARFM_SMALL, tile_size=20, progress=seen.append)
    assert seen and seen[-1] == pytest.approx(1.0)
    assert all(b >= a for a, b in zip(seen, seen[1:]))
    with pytest.raises(tiling.Canceled):
        predict("fsdaf", f1, c1, c2, params=FSDAF_SMALL, is_canceled=lambda: True)


def test_fuse_files_matches_arrays(tmp_path):
    f1, c1, c2 = smooth_scene()
    grid = raster.Grid(f1.shape[2], f1.shape[1], (0.0, 30.0, 0.0, 0.0, 0.0, -30.0), "")
    paths = []
    for name, image in (("f1", f1), ("c1", c1), ("c2", c2)):
        paths.append(raster.write_raster(str(tmp_path / f"{name}.tif"), image, grid))
    for method, params in (("starfm", STARFM_SMALL), ("fsdaf", FSDAF_SMALL)):
        out = str(tmp_path / f"{method}.tif")
        methods.fuse_files(method, params, *paths, out, tile_size=24)
        expected = predict(method, f1, c1, c2, params=params)
        np.testing.assert_allclose(raster.read_raster(out), expected, atol=1e-5)


def test_class_change_unmixing_recovers_class_changes():
    f1 = patches(64, 64)
    c1 = block_mean(f1)
    state = methods.prepare("fsdaf", [(f1, c1)], c1, FSDAF_SMALL)
    labels = fsdaf.classify(f1, state.centers)
    truth = np.array([0.04, -0.02, 0.0, 0.06], np.float32)   # change per class
    f2 = f1 + truth[labels][None]
    state = methods.prepare("fsdaf", [(f1, c1)], block_mean(f2), FSDAF_SMALL)
    np.testing.assert_allclose(state.class_change, np.repeat(truth[None], 3, 0), atol=1e-5)
    out = predict("fsdaf", f1, c1, block_mean(f2), params=FSDAF_SMALL)
    assert np.sqrt(np.mean((out - f2) ** 2)) < 1e-4


def test_kmeans_finds_separated_clusters_and_is_deterministic():
    from stfusion.core.kmeans import kmeans
    rng = np.random.default_rng(5)
    truth = np.array([[0.0, 0.0], [1.0, 0.2], [0.3, 1.0]])
    samples = np.concatenate([t + rng.normal(0, 0.03, (200, 2)) for t in truth])
    centres = kmeans(samples, 3, seed=1)
    found = centres[np.argsort(centres[:, 0])]
    np.testing.assert_allclose(found, truth[np.argsort(truth[:, 0])], atol=0.01)
    np.testing.assert_array_equal(kmeans(samples, 3, seed=1), centres)
    assert kmeans(samples[:2], 5).shape == (2, 2)          # never more classes than samples
    with pytest.raises(ValueError, match="no valid pixel"):
        kmeans(np.empty((0, 2)), 3)


def test_similar_pixel_selection_with_and_without_torch():
    """FSDAF's selection: the k smallest finite keys of a pixel with more than k of them
    (torch.topk and numpy's argpartition pick the same set), all finite ones first, in
    offset order, for a pixel with at most k."""
    rng = np.random.default_rng(3)
    keys = rng.uniform(0, 1, (30, 40)).astype(np.float32)
    keys[rng.uniform(size=keys.shape) < 0.3] = np.inf
    keys[:, 5] = np.inf
    keys[27:, 5] = [0.3, 0.2, 0.1]                          # three candidates only
    torch = pytest.importorskip("torch")
    for engine in (torch, None):
        index, values = fsdaf._smallest(keys, 4, engine)
        np.testing.assert_array_equal(values, np.take_along_axis(keys, index, 0))
        for pixel in range(keys.shape[1]):
            expected = np.sort(keys[:, pixel])[:4]
            np.testing.assert_array_equal(np.sort(values[:, pixel]), expected)
        np.testing.assert_array_equal(index[:3, 5], [27, 28, 29])


def test_similar_pixels_are_picked_by_torch_only_where_its_import_pays(monkeypatch):
    """A small image selects with numpy (importing torch would cost more than it saves); a
    big one with torch when it imports, else with numpy; decided once per run."""
    import importlib.util
    assert not fsdaf._torch_pays(400 * 400)
    installed = importlib.util.find_spec("torch") is not None
    assert fsdaf._torch_pays(fsdaf.TORCH_SELECTION_MIN_PIXELS) == installed
    monkeypatch.setitem(sys.modules, "torch", None)          # a broken installation
    assert not fsdaf._torch_pays(fsdaf.TORCH_SELECTION_MIN_PIXELS)
