"""Trust rule (pair consistency, temporal trust, fall-back towards C2) and the UNCERTAINTY
output, on synthetic blocks and the sample scene, with values asserted."""
import datetime as dt

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stfusion.core import fusion, methods, models, raster, tiling, trust  # noqa: E402


def blocks(rng, size=96, s=8, bands=2):
    """A fine image of s x s blocks with texture, and its exact block means."""
    n = size // s
    coarse = rng.uniform(0.05, 0.4, (bands, n, n))
    fine = np.repeat(np.repeat(coarse, s, 1), s, 2) + 0.02 * rng.standard_normal(
        (bands, size, size))
    c = fine.reshape(bands, n, s, n, s).mean((2, 4))
    return fine.astype(np.float32), np.repeat(np.repeat(c, s, 1), s, 2).astype(np.float32)


def test_pair_trust_statistics():
    rng = np.random.default_rng(0)
    f1, c1 = blocks(rng)
    same = trust.pair_trust([f1], [c1], [c1], 8)
    assert same.correlation == pytest.approx([1, 1], abs=1e-4)
    assert same.bias == pytest.approx([0, 0], abs=1e-6) and same.ratio == pytest.approx([1, 1])
    assert same.bias_trust == pytest.approx([1, 1])
    _, unrelated = blocks(np.random.default_rng(5))
    other = trust.pair_trust([f1], [c1 + 0.05], [unrelated], 8)
    assert other.bias == pytest.approx([0.05, 0.05], abs=1e-5)
    assert np.all(other.ratio < 0.3)
    # +0.05 over a residual spread of ~0 (floored at MIN_SPREAD): not trusted at all
    assert other.bias_trust == pytest.approx([0, 0], abs=1e-6)


def test_local_fault_does_not_widen_the_robust_spread():
    """A strong fault over 4 of 144 blocks doubles the standard spread of C1 - F1, not its
    robust one (median absolute deviation)."""
    rng = np.random.default_rng(3)
    f1, c1 = blocks(rng, bands=1)
    noisy = c1 + 0.01 * np.repeat(np.repeat(rng.standard_normal((1, 12, 12)), 8, 1), 8, 2)
    faulty = noisy.copy()
    faulty[:, :16, :16] += 0.1
    clean, hazed = (trust.pair_trust([f1], [c], [c], 8) for c in (noisy, faulty))
    assert clean.robust_spread == pytest.approx(clean.spread, rel=0.3)
    assert hazed.spread > 1.5 * clean.spread
    assert hazed.robust_spread == pytest.approx(clean.robust_spread, rel=0.2)
    assert hazed.level == pytest.approx(clean.level, abs=0.003)


def test_level_offset_is_carried_over_short_gaps_only():
    """C - F = 0.03 at t1: carried in full without dates, exp(-(gap/75)^2) with them."""
    rng = np.random.default_rng(4)
    f1, c1 = blocks(rng, bands=1)
    offset = trust.pair_trust([f1], [c1 + 0.03], [c1 + 0.03], 8).level
    assert offset == pytest.approx([0.03], abs=1e-6)
    carried = {gap: trust.pair_trust([f1], [c1 + 0.03], [c1], 8, gap_days=gap).offset_transfer
               for gap in (None, 16, 75, 240)}
    assert carried[None] == 1.0 and carried[16] == pytest.approx(np.exp(-(16 / 75) ** 2))
    assert carried[75] == pytest.approx(np.exp(-1)) and carried[240] < 1e-4
    # fully trusted: the fusion F1 + (C2 - C1) keeps F1's level plus the carried offset
    t = lambda a: torch.as_tensor(np.float32(a))  # noqa: E731
    c2, detail = t(0.30), t(0.01)
    fused = c2 - t(offset[0]) + detail
    for gap, share in carried.items():
        out = trust.blend(fused, c2, t(1.0), t(offset[0]), t(offset[0] * share))
        assert float(out) == pytest.approx(0.30 + 0.01 - 0.03 * share, abs=1e-6)
    # not trusted: C2 whatever the offset
    assert float(trust.blend(fused, c2, t(0.0), t(offset[0]), t(offset[0]))) == \
        pytest.approx(0.30)


def sample_arrays(scene, d1=0, d2=1):
    a, b = scene.dates[d1], scene.dates[d2]
    return [raster.read_raster(p) for p in (scene.fine[a], scene.coarse[a], scene.coarse[b],
                                            scene.fine[b])]


@pytest.fixture(scope="module")
def default_model():
    return models.load_model(fusion.default_model_path())


def rmse(a, b, where=None):
    valid = np.isfinite(a).all(0) & np.isfinite(b).all(0)
    if where is not None:
        valid &= where
    return float(np.sqrt(np.mean((a[:, valid] - b[:, valid]) ** 2)))


def test_consistent_pair_without_change_is_trusted_fully(default_model):
    """Exact block means and an unchanged scene: trust 1, the fusion is left as it is."""
    rng = np.random.default_rng(1)
    f1, c1 = blocks(rng, bands=3)
    model, meta = default_model
    on = fusion.prepare(model, meta, [(f1, c1)], c1, scale_ratio=8)
    off = fusion.prepare(model, meta, [(f1, c1)], c1, scale_ratio=8, use_trust=False)
    assert np.nanmax(np.abs(methods.predict_arrays(on, f1, c1, c1)
                            - methods.predict_arrays(off, f1, c1, c1))) < 1e-6


def test_haze_in_the_fine_image_moves_the_prediction_towards_c2(sample_scene, default_model):
    f1, c1, c2, f2 = sample_arrays(sample_scene)
    yy, xx = np.mgrid[:f1.shape[1], :f1.shape[2]]
    disc = np.hypot(yy - 240, xx - 240) < 60
    hazy = np.where(disc, 0.5 * f1 + 0.15, f1).astype(np.float32)
    model, meta = default_model
    lines = []
    on = fusion.prepare(model, meta, [(hazy, c1)], c2, scale_ratio=sample_scene.scale_ratio,
                        log=lines.append)
    off = fusion.prepare(model, meta, [(hazy, c1)], c2, scale_ratio=sample_scene.scale_ratio,
                         use_trust=False)
    with_trust, without = (methods.predict_arrays(s, hazy, c1, c2) for s in (on, off))
    inside = np.hypot(yy - 240, xx - 240) < 45
    # inside the haze: the trivial F1 + (C2 - C1) carries the haze, the fallback does not
    assert rmse(without, f2, inside) > 0.06
    assert rmse(with_trust, f2, inside) < 0.5 * rmse(without, f2, inside)
    assert rmse(with_trust, f2, inside) < 1.2 * rmse(c2, f2, inside)
    # the rest of the scene: hardly worse (the simulated MODIS keeps its level offset to
    # Landsat on every date, which the trust rule carries with the trust and the gap)
    far = np.hypot(yy - 240, xx - 240) > 140
    assert rmse(with_trust, f2, far) < 1.03 * rmse(without, f2, far)
    assert lines and lines[0].startswith("pair 1: fine/coarse correlation")


def test_temporal_trust_follows_the_coarse_relation():
    """Local ratio and trust field on the block grid: C2 = C1 -> 1; C2 unrelated -> ~0."""
    rng = np.random.default_rng(2)
    f1, c1 = blocks(rng, size=128, bands=1)
    noisy = c1 + 0.02 * np.repeat(np.repeat(rng.standard_normal((1, 16, 16)), 8, 1), 8, 2)
    c1n = noisy.astype(np.float32)              # an imperfect coarse sensor
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32))  # noqa: E731
    for c2, low, high in ((c1n, 0.9, 1.0), (blocks(np.random.default_rng(9), 128, 8, 1)[1],
                                             0.0, 0.35)):
        stats = trust.pair_trust([f1], [c1n], [c2], 8)
        field = trust.TileTrust(t(f1), t(c1n), t(c2), stats.tensors("cpu"), 8).trust
        inner = field[0, 24:-24, 24:-24]
        assert low <= float(inner.mean()) <= high


def test_two_pairs_with_a_clouded_second_pair_drop_it(sample_scene, default_model):
    f1, c1, c2, f2 = sample_arrays(sample_scene, 0, 1)
    f3, c3 = (raster.read_raster(p) for p in (sample_scene.fine[sample_scene.dates[2]],
                                              sample_scene.coarse[sample_scene.dates[2]]))
    yy, xx = np.mgrid[:f1.shape[1], :f1.shape[2]]
    cloud = np.clip(1.4 - np.hypot(yy - 240, xx - 240) / 170, 0, 1)[None]
    clouded = (f3 * (1 - 0.9 * cloud) + 0.9 * cloud * 0.35).astype(np.float32)
    model, meta = default_model
    lines = []
    state = fusion.prepare(model, meta, [(f1, c1), (clouded, c3)], c2,
                           scale_ratio=sample_scene.scale_ratio, log=lines.append)
    assert [t.weight for t in state.pair_trust] == [1.0, 0.0]
    assert "dropped" in lines[1]
    both = methods.predict_arrays(state, f1, c1, c2, clouded, c3)
    one = methods.predict_arrays(fusion.prepare(model, meta, [(f1, c1)], c2,
                                                scale_ratio=sample_scene.scale_ratio),
                                 f1, c1, c2)
    assert np.nanmax(np.abs(both - one)) < 1e-5      # the dropped pair plays no part


def test_uncertainty_output_tiled_equals_untiled_and_ranks_errors(sample_scene,
                                                                  default_model):
    f1, c1, c2, f2 = sample_arrays(sample_scene)
    f1[:, 100:104, 200] = np.nan
    model, meta = default_model
    state = fusion.prepare(model, meta, [(f1, c1)], c2, scale_ratio=sample_scene.scale_ratio,
                           uncertainty=True)
    assert methods.layers(state) == ("prediction", "uncertainty")
    whole = methods.predict_arrays(state, f1, c1, c2)
    tiled = methods.predict_arrays(state, f1, c1, c2, tile_size=120)
    assert whole.shape == (12,) + f1.shape[1:]
    assert np.nanmax(np.abs(whole - tiled)) < 1e-5
    prediction, error = whole[:6], whole[6:]
    assert np.array_equal(np.isnan(prediction), np.isnan(error))
    assert np.isnan(error[:, 100:104, 200]).all() and np.nanmin(error) > 0
    scores = trust.uncertainty_scores(prediction, error, f2)
    assert scores["spearman"] > 0.35
    assert 0.6 <= scores["share_below"] <= 0.95
    assert scores["mean_actual"] < scores["mean_predicted"] < 4 * scores["mean_actual"]


def test_uncertainty_files_same_grid_and_all_or_nothing(small_scene, tmp_path):
    d0, d1 = small_scene.dates[:2]
    args = (small_scene.fine[d0], small_scene.coarse[d0], small_scene.coarse[d1])
    out, err = str(tmp_path / "fused.tif"), str(tmp_path / "error.tif")
    summary = fusion.fuse_files(*args, out, uncertainty=err, tile_size=64)
    assert summary["uncertainty"] == err
    # the level offset's transfer from the coarse images' dates (in their file names)
    gap = (dt.date.fromisoformat(d1) - dt.date.fromisoformat(d0)).days
    assert summary["trust"][0]["gap_days"] == gap == 16
    assert summary["trust"][0]["offset_carried"] == pytest.approx(np.exp(-(16 / 75) ** 2),
                                                                  abs=1e-3)
    a, b = raster.raster_info(out), raster.raster_info(err)
    assert (a.grid, a.gdal_type, a.scale, a.nodata) == (b.grid, b.gdal_type, b.scale, b.nodata)
    fused, error = raster.read_raster(out), raster.read_raster(err)
    assert np.array_equal(np.isnan(fused), np.isnan(error)) and np.nanmin(error) >= 0
    report = trust.uncertainty_summary(out, err, small_scene.fine[d1])
    assert len(report["mean_expected_error_per_band"]) == 6 and report["spearman"] > 0.3
    calls = []
    with pytest.raises(tiling.Canceled):
        fusion.fuse_files(*args, str(tmp_path / "c.tif"), uncertainty=str(tmp_path / "u.tif"),
                          tile_size=64, is_canceled=lambda: len(calls) > 0,
                          progress=calls.append)
    assert not list(tmp_path.glob("c.*")) and not list(tmp_path.glob("u.*"))


def test_the_gap_comes_from_a_known_date_when_the_files_tell_none(small_scene, tmp_path):
    """fuse_series knows every image's date (names, metadata or its DATES table) and gives it
    to its sources: the offset rule then has the gap even for files named without dates."""
    import shutil
    from stfusion.core import stfnet
    d0, d1 = small_scene.dates[:2]
    first = shutil.copy(small_scene.coarse[d0], tmp_path / "coarse_a.tif")
    second = shutil.copy(small_scene.coarse[d1], tmp_path / "coarse_b.tif")
    assert stfnet._gap_days(raster.RasterSource(first), raster.RasterSource(second)) is None
    dated = [raster.RasterSource(path, date=dt.date.fromisoformat(day))
             for path, day in ((first, d0), (second, d1))]
    assert stfnet._gap_days(*dated) == 16.0
