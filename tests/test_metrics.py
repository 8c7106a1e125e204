"""core.metrics and core.report: every metric against hand/independent computations,
block-wise == whole-image, nodata handling, the real CIA case, and the report files."""
import csv
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from stfusion.core import metrics, raster, report, tiling

CASE0 = ("2001-10-08", "2001-10-17")


def utm_grid(width, height, pixel=30.0):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    return raster.Grid(width, height, (500000.0, pixel, 0.0, 5100000.0, 0.0, -pixel),
                       srs.ExportToWkt())


INT16 = raster.OutputEncoding(gdal.GDT_Int16, -9999, 1e-4, 0.0)


def write(path, values, encoding=raster.OutputEncoding(), names=()):
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 2:
        values = values[None]
    return raster.write_raster(str(path), values, utm_grid(values.shape[2], values.shape[1]),
                               encoding, names)


def textured(shape, seed):
    """A smooth-plus-edges reflectance-like test image (bands, rows, cols) in 0.02-0.5."""
    rng = np.random.default_rng(seed)
    bands, rows, cols = shape
    y, x = np.mgrid[0:rows, 0:cols]
    base = 0.2 + 0.1 * np.sin(x / 5.0) * np.cos(y / 7.0) + 0.1 * ((x // 9 + y // 6) % 2)
    out = np.stack([base * (0.6 + 0.2 * k) + 0.02 * rng.standard_normal((rows, cols))
                    for k in range(bands)])
    return np.clip(out, 0.02, 0.6).astype(np.float64)


# -- hand-computed values ------------------------------------------------------------------
REF = np.array([[[0.1, 0.2], [0.3, 0.4]]])
PRED = np.array([[[0.1, 0.3], [0.1, 0.4]]])  # errors 0, +0.1, -0.2, 0


def test_scalar_metrics_by_hand():
    assert metrics.rmse(PRED, REF)[0] == pytest.approx(math.sqrt(0.05 / 4))
    assert metrics.mae(PRED, REF)[0] == pytest.approx(0.3 / 4)
    # SST about mean 0.25 = 0.05 = SSE -> R2 = 0
    assert metrics.r2(PRED, REF)[0] == pytest.approx(0.0, abs=1e-12)
    assert metrics.rmae(PRED, REF)[0] == pytest.approx((0.1 / 0.2 + 0.2 / 0.3) / 4)
    # covariance sum 0.035, variance sums 0.0675 and 0.05
    assert metrics.cc(PRED, REF)[0] == pytest.approx(0.035 / math.sqrt(0.0675 * 0.05))
    assert metrics.psnr(PRED, REF)[0] == pytest.approx(10 * math.log10(0.3 ** 2 / 0.0125))
    assert metrics.ergas(PRED, REF, ratio=0.06) == pytest.approx(
        100 * 0.06 * math.sqrt(0.0125) / 0.25)
    assert metrics.maec(0.03, 0.04) == pytest.approx(-0.25)  # better than the baseline
    assert metrics.maec([0.05, 0.02], [0.04, 0.04]).tolist() == pytest.approx([0.25, -0.5])


def test_rmae_skips_near_zero_reference():
    ref = np.array([[[0.005, 0.2]]])
    pred = np.array([[[0.5, 0.3]]])
    assert metrics.rmae(pred, ref)[0] == pytest.approx(0.5)


def test_ergas_two_bands_by_hand():
    ref = np.stack([np.full((3, 3), 0.1), np.full((3, 3), 0.4)])
    pred = ref + np.stack([np.full((3, 3), 0.01), np.full((3, 3), -0.02)])
    # (RMSE/mu) = 0.1 and 0.05 -> sqrt((0.01 + 0.0025) / 2)
    expected = 100 * (30 / 500) * math.sqrt((0.1 ** 2 + 0.05 ** 2) / 2)
    assert metrics.ergas(pred, ref, 30 / 500) == pytest.approx(expected)


def test_sam_by_hand():
    ref = np.array([[[1.0, 0.1]], [[1.0, 0.1]]])    # two pixels, spectra (1,1) and (.1,.1)
    pred = np.array([[[1.0, 0.2]], [[0.0, 0.2]]])   # (1,0): 45 degrees; (.2,.2): 0 degrees
    angles = metrics.spectral_angle(pred, ref)
    assert angles[0].tolist() == pytest.approx([45.0, 0.0], abs=1e-9)
    assert metrics.sam(pred, ref) == pytest.approx(22.5)


def test_edge_by_hand_and_against_loops():
    ref = np.zeros((1, 2, 2))
    pred = np.array([[[1.0, 0.0], [0.0, 0.0]]])
    assert metrics.edge(pred, ref)[0] == pytest.approx(1.0)  # |1-0| + |0-0| - 0
    rng = np.random.default_rng(3)
    f, r = rng.random((1, 5, 6)), rng.random((1, 5, 6))

    def roberts_loop(x):
        return [abs(x[i, j] - x[i + 1, j + 1]) + abs(x[i, j + 1] - x[i + 1, j])
                for i in range(x.shape[0] - 1) for j in range(x.shape[1] - 1)]
    expected = np.mean(np.subtract(roberts_loop(f[0]), roberts_loop(r[0])))
    assert metrics.edge(f, r)[0] == pytest.approx(expected)


def test_ssim_matches_scikit_image():
    structural_similarity = pytest.importorskip("skimage.metrics").structural_similarity
    ref = textured((2, 40, 52), 1)
    pred = ref + 0.03 * np.random.default_rng(2).standard_normal(ref.shape)
    ours = metrics.ssim(pred, ref)
    for k in range(2):
        expected = structural_similarity(
            pred[k], ref[k], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
            data_range=ref[k].max() - ref[k].min())
        assert ours[k] == pytest.approx(expected, abs=1e-10)
        assert 0.3 < ours[k] < 0.99


# -- through files: block-wise, nodata, perfect and offset predictions ----------------------
def test_evaluate_files_matches_array_metrics_and_scikit_image(tmp_path):
    structural_similarity = pytest.importorskip("skimage.metrics").structural_similarity
    ref = textured((3, 33, 41), 4)
    pred = ref + 0.02 * np.random.default_rng(5).standard_normal(ref.shape)
    ref = ref.astype(np.float32).astype(np.float64)  # what the float32 files hold
    pred = pred.astype(np.float32).astype(np.float64)
    ev = metrics.evaluate_files(write(tmp_path / "p.tif", pred), write(tmp_path / "r.tif", ref),
                                ratio=0.06, tile_size=512)
    r = ev.result
    assert r.per_band["RMSE"] == pytest.approx(metrics.rmse(pred, ref).tolist(), rel=1e-9)
    assert r.per_band["MAE"] == pytest.approx(metrics.mae(pred, ref).tolist(), rel=1e-9)
    assert r.per_band["R2"] == pytest.approx(metrics.r2(pred, ref).tolist(), rel=1e-9)
    assert r.per_band["CC"] == pytest.approx(metrics.cc(pred, ref).tolist(), rel=1e-9)
    assert r.per_band["rMAE"] == pytest.approx(metrics.rmae(pred, ref).tolist(), rel=1e-9)
    assert r.per_band["PSNR"] == pytest.approx(metrics.psnr(pred, ref).tolist(), rel=1e-9)
    assert r.per_band["Edge"] == pytest.approx(metrics.edge(pred, ref).tolist(), rel=1e-7)
    assert r.mean["ERGAS"] == pytest.approx(metrics.ergas(pred, ref, 0.06), rel=1e-9)
    assert r.mean["SAM"] == pytest.approx(metrics.sam(pred, ref), rel=1e-9)
    assert r.mean["RMSE"] == pytest.approx(np.mean(r.per_band["RMSE"]))
    for k in range(3):
        expected = structural_similarity(
            pred[k], ref[k], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
            data_range=ref[k].max() - ref[k].min())
        assert r.per_band["SSIM"][k] == pytest.approx(expected, abs=1e-9)
    assert ev.counted_pixels == ev.total_pixels == 33 * 41


def test_blockwise_equals_whole_image(tmp_path):
    ref = textured((3, 45, 58), 6)
    pred = ref + 0.03 * np.random.default_rng(7).standard_normal(ref.shape)
    coarse = ref + 0.05
    pred[:, 10:13, 20:24] = np.nan   # nodata holes so the masks cross tile borders
    ref[1, 30, 5] = np.nan
    paths = dict(prediction=write(tmp_path / "p.tif", pred),
                 reference=write(tmp_path / "r.tif", ref),
                 coarse=write(tmp_path / "c.tif", coarse),
                 compare=write(tmp_path / "k.tif", ref + 0.01))
    whole = metrics.evaluate_files(**paths, tile_size=4096)
    tiled = metrics.evaluate_files(**paths, tile_size=7)   # 7 x 9 = 63 blocks
    for a, b in zip(whole.methods, tiled.methods):
        for name in a.mean:
            assert b.mean[name] == pytest.approx(a.mean[name], rel=1e-9, abs=1e-12), name
            if a.per_band[name] is not None:
                assert b.per_band[name] == pytest.approx(a.per_band[name], rel=1e-9,
                                                         abs=1e-12), name
    for role in whole.histograms:
        assert np.array_equal(whole.histograms[role], tiled.histograms[role])
    assert whole.counted_pixels == tiled.counted_pixels == 45 * 58 - 12 - 1


def test_perfect_and_offset_predictions(tmp_path):
    ref = textured((4, 30, 30), 8)
    reference = write(tmp_path / "r.tif", ref)
    perfect = metrics.evaluate_files(reference, reference, tile_size=8)
    m = perfect.mean
    assert m["RMSE"] == 0 and m["MAE"] == 0 and m["SAM"] == pytest.approx(0, abs=1e-6)
    assert m["SSIM"] == pytest.approx(1.0, abs=1e-12)
    assert m["R2"] == pytest.approx(1.0) and m["CC"] == pytest.approx(1.0)
    assert m["Edge"] == 0 and m["ERGAS"] == 0 and math.isinf(m["PSNR"])
    shifted = metrics.evaluate_files(write(tmp_path / "p.tif", ref + 0.01), reference,
                                     tile_size=8)
    assert shifted.per_band["RMSE"] == pytest.approx([0.01] * 4, abs=1e-6)
    assert shifted.per_band["MAE"] == pytest.approx([0.01] * 4, abs=1e-6)
    assert shifted.per_band["Edge"] == pytest.approx([0.0] * 4, abs=1e-6)
    assert shifted.mean["CC"] == pytest.approx(1.0, abs=1e-6)


def test_nodata_pixels_do_not_count(tmp_path):
    ref = textured((2, 20, 24), 9)
    pred = ref + 0.01
    pred_stored, ref_stored, coarse = pred.copy(), ref.copy(), ref + 0.03
    pred_stored[0, 2, 3] = np.nan       # written as -9999 (int16 nodata)
    ref_stored[1, 15, 20] = np.nan
    coarse[:, 5, 7] = np.nan
    ev = metrics.evaluate_files(write(tmp_path / "p.tif", pred_stored, INT16),
                                write(tmp_path / "r.tif", ref_stored, INT16),
                                coarse=write(tmp_path / "c.tif", coarse, INT16))
    assert ev.counted_pixels == 20 * 24 - 3
    # the stored values are 1e-4 steps: each valid pixel's error is 0.01 exactly
    assert ev.per_band["MAE"] == pytest.approx([0.01, 0.01], abs=2e-5)
    assert ev.method("coarse").per_band["MAE"] == pytest.approx([0.03, 0.03], abs=2e-5)
    assert ev.per_band["MAEC_coarse"] == pytest.approx([-2 / 3, -2 / 3], abs=1e-3)
    # a nodata pixel with a huge wrong value elsewhere would have shown up
    assert max(ev.per_band["RMSE"]) < 0.0101


def test_mismatched_grids_and_band_counts(tmp_path):
    ref = write(tmp_path / "r.tif", textured((2, 10, 10), 1))
    small = write(tmp_path / "s.tif", textured((2, 10, 9), 1))
    three = write(tmp_path / "t.tif", textured((3, 10, 10), 1))
    with pytest.raises(raster.RasterError, match="prediction.*not on the reference grid"):
        metrics.evaluate_files(small, ref)
    with pytest.raises(raster.RasterError, match="coarse.*3 bands.*reference has 2"):
        metrics.evaluate_files(ref, ref, coarse=three)


def test_progress_and_cancel(tmp_path):
    path = write(tmp_path / "r.tif", textured((1, 20, 20), 1))
    seen = []
    metrics.evaluate_files(path, path, progress=seen.append, tile_size=8)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 18
    with pytest.raises(tiling.Canceled):
        metrics.evaluate_files(path, path, is_canceled=lambda: True)


def test_ratio_sources(tmp_path):
    ref = write(tmp_path / "r.tif", textured((1, 10, 10), 1))
    assert metrics.coarse_ratio(ref, None, None)[0] == pytest.approx(0.06)
    assert "500 m MODIS over the 30 fine pixel" in metrics.coarse_ratio(ref, None, None)[1]
    assert metrics.coarse_ratio(ref, None, 500 / 30)[0] == pytest.approx(0.06)
    coarse = write(tmp_path / "c.tif", textured((1, 10, 10), 2))
    ds = gdal.Open(coarse, gdal.GA_Update)
    ds.SetMetadataItem("STFUSION_COARSE_PIXEL_SIZE", "480")
    ds = None
    assert metrics.coarse_ratio(ref, coarse, None)[0] == pytest.approx(30 / 480)


# -- the real CIA case and the report files -------------------------------------------------
def test_cia_case0_baseline_and_report(shared_data, tmp_path):
    site = shared_data / "cia"
    meta = json.loads((site / "dataset.json").read_text())
    t1, t2 = CASE0
    f1 = raster.read_raster(str(site / meta["fine"][t1]))
    c1 = raster.read_raster(str(site / meta["coarse"][t1]))
    c2 = raster.read_raster(str(site / meta["coarse"][t2]))
    reference = str(site / meta["fine"][t2])
    prediction = raster.write_raster(str(tmp_path / "f1_dc.tif"), f1 + (c2 - c1),
                                     raster.raster_info(reference).grid)
    ev = metrics.evaluate_files(prediction, reference, coarse=str(site / meta["coarse"][t2]),
                                compare=str(site / meta["fine"][t1]),
                                band_names=meta["bands"], tile_size=96)
    assert ev.mean["RMSE"] == pytest.approx(0.036, abs=0.001)
    assert ev.method("compare").mean["RMSE"] == pytest.approx(0.0388, abs=0.001)  # F1 copy
    assert ev.mean["RMSE"] < ev.method("coarse").mean["RMSE"]
    paths = report.write_report(ev, str(tmp_path / "cia0.html"))
    data = json.loads(Path(paths.json).read_text())
    assert data["methods"][0]["mean"]["RMSE"] == pytest.approx(ev.mean["RMSE"])
    assert data["bands"] == meta["bands"]
    rows = list(csv.DictReader(Path(paths.csv).read_text().splitlines()))
    mean_row = next(r for r in rows if r["method"] == "prediction" and r["band"] == "mean")
    assert float(mean_row["RMSE"]) == pytest.approx(ev.mean["RMSE"])
    assert len(rows) == 3 * 7
    text = Path(paths.html).read_text(encoding="utf-8")
    assert "0.0362" in text and "MAEC vs coarse" in text and "Table 3" in text
    assert text.count('src="data:image/png;base64,') >= 6   # ref, coarse, 2 fused, 2 errors


# -- generic report helpers -----------------------------------------------------------------
def test_line_chart_svg_is_valid_svg():
    svg = report.line_chart_svg({"train": [1.0, 0.5, 0.3, float("nan"), 0.2],
                                 "validation": [(1, 1.2), (2, 0.7), (5, 0.4)]},
                                title="loss", y_label="MSE", log_y=True)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    lines = root.findall(f"{ns}polyline")
    assert root.tag == f"{ns}svg" and len(lines) == 2
    assert len(lines[0].get("points").split()) == 4       # the NaN is skipped
    assert "validation" in svg and "loss" in svg
    for points in ([], [0.5]):                            # empty and single-point series
        ET.fromstring(report.line_chart_svg({"a": points}))
    ET.fromstring(report.line_chart_svg({"a & <b>": [3, 3, 3]}))


def test_html_helpers_and_png():
    table = report.table_html(["m", "x"], [["<RMSE>", "0.1"]], caption="c", best=[(0, 1)])
    assert "&lt;RMSE&gt;" in table and 'class="best"' in table
    page = report.html_page("T & t", [("A", table)])
    assert page.startswith("<!DOCTYPE html>") and "T &amp; t" in page
    png = report.png_bytes(np.zeros((3, 4, 5), np.uint8))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    ET.fromstring(report.density_svg(np.eye(10, dtype=int), 0.0, 0.5, title="nir"))


def test_training_and_fusion_reports(tmp_path):
    history = {"train_loss": [0.5, 0.3], "val_loss": [0.6, 0.4], "epochs": 2}
    paths = report.write_training_report(str(tmp_path / "train.html"), {"epochs": 2}, history)
    text = Path(paths.html).read_text(encoding="utf-8")
    assert text.count("<polyline") == 2 and "val_loss" in text
    assert "train_loss,2,0.3" in Path(paths.csv).read_text()
    assert report.history_series({"train": [1, 2], "epoch": [1, 2]}) == {"train": [1, 2]}
    fine, coarse, fused = (write(tmp_path / f"{name}.tif", textured((3, 16, 16), seed))
                           for seed, name in enumerate(("fine", "coarse", "fused")))
    run = {"inputs": {"FINE_T1": fine, "COARSE_T1": coarse, "COARSE_T2": coarse},
           "output": fused, "band_names": ["blue", "green", "red"], "seconds": 1.5,
           "model": {"architecture": "stfnet", "model": {"training": {"epochs": 60}}},
           "trained_on_this_scene": None}
    paths = report.write_fusion_report(str(tmp_path / "fuse.html"), run)
    text = Path(paths.html).read_text(encoding="utf-8")
    # without a reference: quick-looks of the 3 inputs and the output, flat tables, no JSON
    assert text.count("<img") == 4 and "fused: fused.tif" in text
    assert "<th>model › training › epochs</th><td>60</td>" in text
    assert '{"' not in text and "trained on this scene" not in text
    ref = write(tmp_path / "r.tif", textured((2, 16, 16), 1))
    ev = metrics.evaluate_files(ref, ref)
    assert ev.mean["rmse"] == ev.mean["RMSE"] == 0
    run["trained_on_this_scene"] = "cia (2001-10-08, 2001-10-17)"
    paths = report.write_fusion_report(str(tmp_path / "fuse2.html"), run, ev)
    text = Path(paths.html).read_text(encoding="utf-8")
    assert "Fusion run" in text and "Table 2" in text
    assert text.index("The model was trained on this scene") < text.index("Table 2")
