"""Core fusion numerics: tiling exactness, NaN, model files, determinism, paper shapes."""
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stfusion.core import fusion, methods, models, stfnet, training  # noqa: E402


def scene(seed=0, bands=3, size=64, ratio=8):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    classes = ((xx // 11 + yy // 7) % 3)
    base = np.array([[0.05, 0.1, 0.3], [0.08, 0.12, 0.2], [0.1, 0.2, 0.25]])[:, :bands]
    f1 = base[classes].transpose(2, 0, 1) + 0.01 * rng.standard_normal((bands, size, size))
    change = np.array([0.02, -0.03, 0.05])[classes][None] * np.ones((bands, 1, 1))
    f2 = f1 + change

    def coarse(f):
        c = f.reshape(bands, size // ratio, ratio, size // ratio, ratio).mean((2, 4))
        return np.repeat(np.repeat(c, ratio, 1), ratio, 2)
    return [a.astype(np.float32) for a in (f1, coarse(f1), coarse(f2), f2)]


def test_tiled_equals_untiled_stfnet():
    f1, c1, c2, _ = scene()
    model = models.build_model("stfnet")
    state = fusion.prepare(model, {"architecture": "stfnet"}, [(f1, c1)], c2, scale_ratio=8,
                           use_cnn=True)
    whole = methods.predict_arrays(state, f1, c1, c2)
    tiled = methods.predict_arrays(state, f1, c1, c2, tile_size=24)
    assert np.nanmax(np.abs(whole - tiled)) < 1e-5
    assert np.isnan(whole).sum() == np.isnan(tiled).sum() == 0


def test_tiled_equals_untiled_two_pairs_and_paper():
    f1, c1, c2, f2 = scene(1)
    f3, c3 = f2 + 0.01, c2 + 0.01
    state = fusion.prepare(None, {"architecture": "stfnet"}, [(f1, c1), (f3, c3)], c2,
                           scale_ratio=8, use_cnn=False)
    a = methods.predict_arrays(state, f1, c1, c2, f3, c3)
    b = methods.predict_arrays(state, f1, c1, c2, f3, c3, tile_size=20)
    assert np.nanmax(np.abs(a - b)) < 1e-5
    paper = models.build_model("paper", 3)
    pstate = fusion.prepare(paper, {"architecture": "paper", "band_count": 3},
                            [(f1, c1), (f3, c3)], c2, scale_ratio=8)
    a = methods.predict_arrays(pstate, f1, c1, c2, f3, c3)
    b = methods.predict_arrays(pstate, f1, c1, c2, f3, c3, tile_size=20)
    assert np.nanmax(np.abs(a - b)) < 1e-5


@pytest.mark.parametrize("ratio", [8, 10, 16])
def test_stfnet_halo_is_exact_and_tight(ratio):
    """Random values everywhere beyond the halo of a region leave its prediction and
    uncertainty bit-identical (the default model, two pairs, trust on); one tile multiple
    less and they change: the halo is all a tile needs, and no more."""
    size = 14 * ratio
    f1, c1, c2, f2 = scene(3, size=size, ratio=ratio)
    f3, c3 = f2 + 0.01, c2 + 0.01
    model, metadata = models.load_model(fusion.default_model_path())
    state = fusion.prepare(model, metadata, [(f1, c1), (f3, c3)], c2, scale_ratio=ratio,
                           uncertainty=True)
    halo, multiple = stfnet.halo(state), stfnet.tile_multiple(state)
    x0, region = size // 2 // multiple * multiple, multiple
    inner = (slice(None), slice(x0, x0 + region), slice(x0, x0 + region))
    whole = methods.predict_arrays(state, f1, c1, c2, f3, c3)
    rng = np.random.default_rng(0)

    def beyond(reach):
        keep = np.zeros((size, size), bool)
        keep[x0 - reach:x0 + region + reach, x0 - reach:x0 + region + reach] = True
        images = [a.copy() for a in (f1, c1, c2, f3, c3)]
        for a in images:
            a[:, ~keep] = rng.uniform(0.0, 0.4, (a.shape[0], int((~keep).sum())))
        return methods.predict_arrays(state, *images)[inner]
    assert x0 - halo >= 0 and not np.isnan(whole[inner]).any()
    assert np.array_equal(beyond(halo), whole[inner])
    assert np.abs(beyond(halo - multiple) - whole[inner]).max() > 1e-6


def test_physics_prior_beats_coarse_change_on_class_change():
    f1, c1, c2, f2 = scene(2)
    state = fusion.prepare(None, {"architecture": "stfnet"}, [(f1, c1)], c2, scale_ratio=8,
                           use_cnn=False)
    pred = methods.predict_arrays(state, f1, c1, c2)
    err = np.sqrt(np.mean((pred - f2) ** 2))
    naive = np.sqrt(np.mean((f1 + c2 - c1 - f2) ** 2))
    assert err < naive


def test_nan_propagation():
    f1, c1, c2, _ = scene(3)
    f1[0, 5, 7] = np.nan
    c2[:, 30:33, 40] = np.nan
    state = fusion.prepare(models.build_model("stfnet"), {"architecture": "stfnet"},
                           [(f1, c1)], c2, scale_ratio=8, use_cnn=True)
    out = methods.predict_arrays(state, f1, c1, c2, tile_size=32)
    assert np.isnan(out[:, 5, 7]).all() and np.isnan(out[:, 30:33, 40]).all()
    assert np.isfinite(out).sum() == out.size - 3 * (1 + 3)


def test_save_load_round_trip(tmp_path):
    model = models.build_model("paper", 4)
    meta = {"architecture": "paper", "band_count": 4, "band_names": list("abcd")}
    path = tmp_path / "m.pt"
    models.save_model(str(path), model, meta)
    loaded, meta2 = models.load_model(str(path))
    assert meta2["band_names"] == list("abcd") and meta2["format_version"] == models.FORMAT_VERSION
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_default_weights_load():
    model, meta = models.load_model(fusion.default_model_path())
    assert meta["architecture"] == models.DEFAULT_ARCHITECTURE and meta["band_agnostic"]


class _Payload:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned > /dev/null",))


def test_crafted_pickle_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": models.FORMAT, "state_dict": {}, "metadata_json": "{}",
                "x": _Payload()}, str(path))
    with pytest.raises(models.ModelFileError):
        models.load_model(str(path))
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(models.ModelFileError):
        models.load_model(str(raw))


def test_training_determinism_paper():
    f1, c1, _, _ = scene(4)
    a, ha = training.train([(f1, c1)], "paper", epochs=2, max_patches=300, seed=3)
    b, hb = training.train([(f1, c1)], "paper", epochs=2, max_patches=300, seed=3)
    for v, w in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(v, w)
    assert len(ha["train_loss"]) == len(ha["val_loss"]) == 2 and ha == hb


def test_training_determinism_stfnet_and_cancel():
    f1, c1, c2, f2 = scene(5, size=48)
    kw = dict(epochs=2, steps_per_epoch=2, batch_size=4, scale_ratio=8, seed=1)
    a, _ = training.train([(f1, c1), (f2, c2)], "stfnet", **kw)
    b, _ = training.train([(f1, c1), (f2, c2)], "stfnet", **kw)
    for v, w in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(v, w)
    from stfusion.core.tiling import Canceled
    with pytest.raises(Canceled):
        training.train([(f1, c1), (f2, c2)], "stfnet", is_canceled=lambda: True, **kw)


def test_paper_model_shapes():
    model = models.build_model("paper", 6)
    out = model(torch.zeros(5, 6, 3, 3))
    assert out.shape == (5, 6)
    assert models.build_model("stfnet")(torch.zeros(2, models.STFNET_CHANNELS, 9, 9)).shape \
        == (2, 1, 9, 9)
    with pytest.raises(ValueError):
        models.build_model("nope")


def test_stratified_sampling_covers_edges():
    f1, c1, _, _ = scene(6)
    rng = np.random.default_rng(0)
    ys, xs = training.stratified_patches(f1, c1, 200, rng)
    assert len(ys) == 200 and ys.min() >= 1 and ys.max() <= f1.shape[1] - 2


# ----------------------------------------------------------------------------- files, API

def _write(tmp_path, name, array):
    from stfusion.core import raster
    from osgeo import gdal
    grid = raster.Grid(array.shape[2], array.shape[1], (0.0, 30.0, 0.0, 0.0, 0.0, -30.0), "")
    path = str(tmp_path / name)
    raster.write_raster(path, array, grid, raster.OutputEncoding(gdal.GDT_Float32, -9999.0))
    return path


def test_train_files_round_trip_and_determinism(tmp_path):
    f1, c1, c2, f2 = scene(7, size=48)
    pairs = [(_write(tmp_path, "f1.tif", f1), _write(tmp_path, "c1.tif", c1)),
             (_write(tmp_path, "f2.tif", f2), _write(tmp_path, "c2.tif", c2))]
    logs = []
    kw = dict(architecture="default", epochs=2, batch_size=4, seed=5, log=logs.append)
    a = training.train_files(pairs, str(tmp_path / "a.pt"), **kw)
    b = training.train_files(pairs, str(tmp_path / "b.pt"), **kw)
    ma, meta = models.load_model(str(tmp_path / "a.pt"))
    mb, _ = models.load_model(str(tmp_path / "b.pt"))
    for v, w in zip(ma.state_dict().values(), mb.state_dict().values()):
        assert torch.equal(v, w)
    assert meta["architecture"] == "stfnet" and meta["band_agnostic"] and meta["trained"]
    assert len(a.history["train_loss"]) == len(a.history["val_loss"]) == 2
    assert a.metadata["final_val_loss"] == b.metadata["final_val_loss"] and logs
    p = training.train_files(pairs[:1], str(tmp_path / "p.pt"), architecture="paper",
                             epochs=1, batch_size=16)
    assert p.metadata["band_count"] == 3 and models.load_model(str(tmp_path / "p.pt"))
    with pytest.raises(ValueError):
        training.train_files(pairs[:1], str(tmp_path / "x.pt"), epochs=1)


def test_fuse_files_paper_and_summary(tmp_path):
    from stfusion.core import raster
    f1, c1, c2, f2 = scene(8, size=40)
    paths = [_write(tmp_path, n, a) for n, a in (("f1.tif", f1), ("c1.tif", c1),
                                                  ("c2.tif", c2))]
    out = str(tmp_path / "paper.tif")
    summary = fusion.fuse_files(*paths, out, architecture="paper", adapt_epochs=1,
                                scale_ratio=8)
    assert summary["architecture"] == "paper" and summary["cnn_used"]
    assert np.isfinite(raster.read_raster(out)).all()
    summary = fusion.fuse_files(*paths, str(tmp_path / "d.tif"), architecture="default",
                                scale_ratio=8, tile_size=16)
    assert summary["architecture"] == "stfnet" and summary["scale_ratio"] == 8


def test_small_scene_falls_back_to_guided_coarse_change():
    f1, c1, c2, f2 = scene(9, size=16)            # 4 coarse pixels < 8 classes
    st = fusion.prepare(None, {"architecture": "stfnet"}, [(f1, c1)], c2, scale_ratio=8,
                        use_cnn=False)
    assert st.alpha == 0.0
    pred = methods.predict_arrays(st, f1, c1, c2)
    from stfusion.core import stfnet_fields as fields
    t = lambda a: torch.from_numpy(a)  # noqa: E731
    pair = fields.PairFields(t(f1), t(c1), t(c2), st.pairs[0].tensors(torch, "cpu"), 8)
    gd = torch.stack([pair.band(j)["gd"] for j in range(len(f1))]).numpy()
    np.testing.assert_allclose(pred, f1 + gd, atol=1e-6)
    assert stfnet.unmixing_confidence(1000, 8, 5) == 1.0
    assert 0 < stfnet.unmixing_confidence(15, 8, 5) < 1


def test_default_beats_coarse_change_on_sample(tmp_path):
    from stfusion.core import raster
    from stfusion.core.sample_scene import make_sample_scene
    s = make_sample_scene(str(tmp_path / "s"), size=160)
    d0, d1 = s.dates[:2]
    out = str(tmp_path / "fused.tif")
    summary = fusion.fuse_files(s.fine[d0], s.coarse[d0], s.coarse[d1], out)
    f1, c1, c2, f2 = (raster.read_raster(p) for p in (s.fine[d0], s.coarse[d0],
                                                       s.coarse[d1], s.fine[d1]))
    fused = raster.read_raster(out)
    rmse = lambda a: float(np.mean(np.sqrt(np.nanmean((a - f2) ** 2, axis=(1, 2)))))  # noqa
    assert rmse(fused) < rmse(f1 + c2 - c1)
    assert summary["model"]["architecture"] == "stfnet"


def test_architecture_alias_and_device():
    assert models.resolve_architecture("default") == models.DEFAULT_ARCHITECTURE
    assert isinstance(models.build_model("default"), models.STFNet)
    f1, c1, c2, _ = scene(10, size=32)
    st = fusion.prepare(None, {"architecture": "default"}, [(f1, c1)], c2, scale_ratio=8,
                        use_cnn=True, device="cpu")
    assert st.METHOD == "stfnet" and next(st.model.parameters()).device.type == "cpu"


def test_classify_picks_the_nearest_standardised_centre():
    from stfusion.core import stfnet_fields as fields
    rng = np.random.default_rng(4)
    f = rng.uniform(0, 0.5, (4, 30, 20)).astype(np.float32)
    centres = rng.normal(0, 1, (6, 4)).astype(np.float32)
    centres[5] = centres[2]                       # a tie: the first centre wins
    mean, std = f.mean((1, 2)), f.std((1, 2))
    labels = fields.classify(*(torch.from_numpy(a) for a in (f, centres, mean, std))).numpy()
    x = ((f - mean[:, None, None]) / std[:, None, None]).reshape(4, -1).T
    distances = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(labels.ravel(), distances.argmin(1))
    assert 2 in labels and 5 not in labels


def test_block_sums_and_interpolation_kernels():
    """block_sum equals a padded reference (partial blocks, exact uint8 counts); with every
    block valid, Interp's skipped normalisation gives what the normalised path gives;
    all_finite is isfinite over the bands (huge values do not overflow to invalid)."""
    from stfusion.core import stfnet_fields as fields
    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.uniform(0, 1, (3, 50, 37)).astype(np.float32))
    padded = torch.nn.functional.pad(x.double(), (0, 51 - 37, 0, 51 - 50))
    reference = padded.reshape(3, 3, 17, 3, 17).sum((2, 4))
    np.testing.assert_allclose(fields.block_sum(x, 17).double(), reference, rtol=1e-6)
    classes = torch.from_numpy(rng.integers(0, 2, (2, 50, 37)).astype(np.uint8))
    counts = fields.block_sum(classes, 17)
    assert counts.dtype == torch.int16
    np.testing.assert_array_equal(counts.long(), torch.nn.functional.pad(
        classes.long(), (0, 14, 0, 1)).reshape(2, 3, 17, 3, 17).sum((2, 4)))
    blocks = torch.from_numpy(rng.normal(0, 1, (2, 8, 6)).astype(np.float32))
    fast = fields.Interp(136, 102, 17, torch.ones(8, 6))
    assert fast._all_valid          # the interpolated weights are exactly one here
    normalised = fast._normalise(fast._bil(blocks))
    np.testing.assert_array_equal(fast.up(blocks), normalised)
    sol = torch.from_numpy(rng.normal(0, 1, (8, 6, 2, 5)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 2, (136, 102)))
    slow = fields.Interp(136, 102, 17, torch.ones(8, 6))
    slow._all_valid = False
    np.testing.assert_allclose(fast.up_class(sol, labels), slow.up_class(sol, labels),
                               atol=1e-6)
    images = [rng.normal(0, 1e30, (3, 20, 20)).astype(np.float32) for _ in range(2)]
    images[0][1, 2, 3], images[1][2, 5, 6], images[1][0, 7, 8] = np.nan, np.inf, -np.inf
    finite = fields.all_finite(*(torch.from_numpy(a) for a in images)).numpy()
    np.testing.assert_array_equal(finite, np.isfinite(images[0]).all(0)
                                  & np.isfinite(images[1]).all(0))
    assert finite.sum() == 397


@pytest.mark.parametrize("name", ["stfnet", "paper", "starfm", "fsdaf"])
def test_every_method_follows_the_protocol(name):
    """Each registered method: a small picklable state, a halo that is a multiple of its
    tile multiple, and tiled == untiled through the one driver."""
    from stfusion.core import fsdaf, paper_dcnn, starfm, stfnet
    f1, c1, c2, _ = scene(11, size=48)
    settings = {"stfnet": stfnet.StfnetSettings(models.build_model("stfnet"), 8.0),
                "paper": paper_dcnn.PaperSettings(models.build_model("paper", 3), 8.0),
                "starfm": starfm.StarfmParams(window=9),
                "fsdaf": fsdaf.FsdafParams(scale_ratio=8, window=9, tps_radius=1)}[name]
    state = methods.prepare(name, [(f1, c1)], c2, settings)
    module = methods.method(name)
    assert state.METHOD == name and module.halo(state) % module.tile_multiple(state) == 0
    copy = pickle.loads(pickle.dumps(state))
    assert len(pickle.dumps(state)) < 1_000_000        # the paper DCNN: ~220 kB
    whole = methods.predict_arrays(copy, f1, c1, c2)
    tiled = methods.predict_arrays(state, f1, c1, c2, tile_size=16)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    assert np.isfinite(whole).all()


def test_a_pairs_fields_kept_across_coarse_images_are_the_same():
    """A series keeps the part of a pair's fields that does not depend on C2 per tile
    (``TileWindow.shared``): the predictions are those computed afresh, and a C2 with a
    hole where the pair is valid gets fields of its own."""
    f1, c1, c2, _ = scene(11, size=64)
    st = fusion.prepare(None, {"architecture": "default"}, [(f1, c1)], c2, scale_ratio=8)
    holed = c2.copy()
    holed[:, 20:30, 5:40] = np.nan
    shared, bases = [{}], []
    for coarse in (c2, c2 + 0.01, holed, c2 - 0.02):
        afresh = stfnet.predict_tile(st, methods.TileWindow([(f1, c1)], coarse))
        kept = stfnet.predict_tile(st, methods.TileWindow([(f1, c1)], coarse, shared=shared))
        np.testing.assert_array_equal(kept, afresh)
        assert np.isnan(kept[:, 25, 10]).all() == (coarse is holed)
        bases.append(shared[0]["base"])
    base = bases[0]
    assert all(b is base for b in bases)          # made once, for the dates without a hole
    assert base.valid.all() and not base.serves(torch.from_numpy(np.isfinite(holed).all(0)),
                                                 st.pairs[0].tensors(torch, "cpu"),
                                                 base.options)
