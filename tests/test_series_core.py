"""The time-series core: dates, pair choice per date and per pixel, resume, cancel, outputs."""
import csv
import datetime as dt
import os

import numpy as np
import pytest
from osgeo import gdal

from stfusion.core import acquisition, fusion, raster, series, series_outputs, tiling
from stfusion.core.errors import InputError

D = dt.date


def test_dates_from_names():
    cases = {"landsat_2020-04-12.tif": D(2020, 4, 12), "x_2020_04_12_b.tif": D(2020, 4, 12),
             "modis20200412.tif": D(2020, 4, 12), "ndvi_2020103.tif": D(2020, 4, 12),
             "LC08_L2SP_123032_20200412_20200822_02_T1_SR_B4.TIF": D(2020, 4, 12),
             "MOD09GA.A2020103.h18v04.061.2020105034541.hdf": D(2020, 4, 12),
             "scene_12345678.tif": None, "scene.tif": None}
    for name, expected in cases.items():
        assert acquisition.date_in_text(name) == expected, name


def test_dates_from_metadata_and_table(tmp_path):
    path = str(tmp_path / "no_date_in_name.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 4, 4, 1)
    ds.SetMetadataItem("ACQUISITIONDATE", "2019-07-02T10:31:00Z")
    ds = None
    assert acquisition.image_date(path, "FINE") == D(2019, 7, 2)
    table = tmp_path / "dates.csv"
    table.write_text("file,date\nno_date_in_name.tif,2019-07-03\n")
    table = acquisition.read_dates_table(str(table))
    assert acquisition.image_date(path, "FINE", table) == D(2019, 7, 3)


def test_a_file_without_date_is_named(tmp_path):
    with pytest.raises(InputError, match=r"COARSE.*'/data/scene\.tif'.*DATES"):
        acquisition.image_date("/data/scene.tif", "COARSE")
    with pytest.raises(InputError, match="same date"):
        acquisition.image_dates(["a_2020-01-01.tif", "b_20200101.tif"], "FINE")


def test_target_dates():
    assert acquisition.parse_target_dates("") is None
    assert acquisition.parse_target_dates("2020-03-01/2020-03-07/3") == [
        D(2020, 3, 1), D(2020, 3, 4), D(2020, 3, 7)]
    assert acquisition.parse_target_dates("2020-03-05, 2020-03-01") == [D(2020, 3, 1),
                                                                  D(2020, 3, 5)]
    with pytest.raises(InputError, match="TARGET_DATES.*before it starts"):
        acquisition.parse_target_dates("2020-03-07/2020-03-01")
    with pytest.raises(InputError, match="TARGET_DATES.*'March' is not a date"):
        acquisition.parse_target_dates("March")


def images(kind, days):
    return [series.Image(f"{kind}_{D(2020, 1, 1) + dt.timedelta(d)}.tif",
                         D(2020, 1, 1) + dt.timedelta(d)) for d in days]


def test_pair_choice_per_date():
    fine = images("fine", [0, 16, 32, 100])
    coarse = images("coarse", range(0, 40, 2))        # no coarse image for day 100
    plan = series.make_plan(fine, coarse, {}, max_gap_days=20)
    assert [p.date.day for p in plan.pairs] == [1, 17, 2]    # Jan 1, Jan 17, Feb 2
    assert plan.skipped == [(D(2020, 4, 10), "fine image without a coarse image of its date")]
    by_date = {e.date: [plan.label(c) for c in e.candidates] for e in plan.entries}
    assert D(2020, 1, 1) not in by_date                     # has a fine image
    assert by_date[D(2020, 1, 5)] == ["2020-01-01 + 2020-01-17", "2020-01-01", "2020-01-17"]
    assert by_date[D(2020, 1, 13)] == ["2020-01-01 + 2020-01-17", "2020-01-17", "2020-01-01",
                                       "2020-02-02"]
    # unbalanced gaps (2 and 14 days): the nearest pair first, no two-pair fusion
    assert by_date[D(2020, 1, 3)] == ["2020-01-01", "2020-01-17"]
    far = series.make_plan(images("fine", [0, 70]), images("coarse", [0, 34, 36, 70]), {})
    far_dates = {e.date: [far.label(c) for c in e.candidates] for e in far.entries}
    assert far_dates[D(2020, 2, 4)] == ["2020-01-01", "2020-03-11"]      # 34 + 36 days
    assert far_dates[D(2020, 2, 6)] == ["2020-03-11", "2020-01-01"]      # 36 + 34 days
    # after the last pair: one pair within reach, no two-pair fusion
    assert by_date[D(2020, 2, 6)] == ["2020-02-02", "2020-01-17"]
    entry = next(e for e in plan.entries if e.date == D(2020, 1, 13))
    assert plan.gap_days(entry, entry.candidates[0]) == [-12, 4]


def test_fine_dates_copied_or_predicted_and_composites():
    fine = images("fine", [0, 10, 20])
    coarse = images("composite", [0, 16])                 # 16-day composites
    copy = series.make_plan(fine, coarse, {}, targets=[D(2020, 1, 11)], period_days=16,
                            fine_dates=series.FINE_DATES_COPY)
    assert [p.coarse for p in copy.pairs] == ["composite_2020-01-01.tif"] * 2 + [
        "composite_2020-01-17.tif"]
    (entry,) = copy.entries
    assert entry.coarse == "composite_2020-01-01.tif"
    assert [copy.label(c) for c in entry.candidates] == [
        "2020-01-11 (fine image)", "2020-01-01 + 2020-01-21", "2020-01-01", "2020-01-21"]
    predict = series.make_plan(fine, coarse, {}, targets=[D(2020, 1, 11)], period_days=16,
                               fine_dates=series.FINE_DATES_PREDICT)
    assert "2020-01-11" not in " ".join(predict.label(c) for c in predict.entries[0].candidates)
    skip = series.make_plan(fine, coarse, {}, targets=[D(2020, 1, 11)], period_days=16)
    assert skip.entries == [] and "fine image" in skip.skipped[0][1]


def sample_plan(s, targets, fine_dates=series.FINE_DATES_SKIP, max_gap_days=64):
    fine = [series.Image(p, D.fromisoformat(d)) for d, p in s.fine.items()]
    coarse = [series.Image(p, D.fromisoformat(d)) for d, p in s.coarse.items()]
    masks = {D.fromisoformat(d): p for d, p in s.masks.items()}
    return series.make_plan(fine, coarse, masks, [D.fromisoformat(t) for t in targets],
                            max_gap_days, fine_dates=fine_dates)


def masked_copy(s, date, path):
    """The fine image of ``date`` with its masked pixels as nodata (what fuse would need)."""
    image = raster.read_raster(s.fine[date])
    image[:, raster.read_raster(s.masks[date])[0] != 0] = np.nan
    info = raster.raster_info(s.fine[date])
    return raster.write_raster(str(path), image, info.grid, raster.OutputEncoding.like(info))


def test_two_pairs_where_clear_the_nearest_clear_pair_under_clouds(sample_series, tmp_path):
    """2021-05-07 lies midway between 05-01 (clear) and 05-13 (clouded): two-pair fusion equal to
    stfusion's fuse where both are clear, the 05-01 pair alone under the 05-13 clouds."""
    s = sample_series
    plan = sample_plan(s, ["2021-05-07"])
    info = raster.raster_info(s.fine["2021-05-01"])
    result = series.run_series(plan, info, series.SeriesSettings(), str(tmp_path / "out"))
    fused = raster.read_raster(result.outputs[D(2021, 5, 7)])
    clouded = raster.read_raster(s.masks["2021-05-13"])[0] != 0
    assert np.isfinite(fused).all()                          # no nodata under the clouds
    pixels = {source["pairs"]: source["pixels"] for source in result.sources[D(2021, 5, 7)]}
    assert pixels["2021-05-01 + 2021-05-13"] == (~clouded).sum()
    assert pixels["2021-05-01"] == clouded.sum() > 1000
    masked = masked_copy(s, "2021-05-13", tmp_path / "fine_masked.tif")
    two = str(tmp_path / "two.tif")
    fusion.fuse_files(s.fine["2021-05-01"], s.coarse["2021-05-01"], s.coarse["2021-05-07"],
                      two, fine_t3=masked, coarse_t3=s.coarse["2021-05-13"])
    one = str(tmp_path / "one.tif")
    fusion.fuse_files(s.fine["2021-05-01"], s.coarse["2021-05-01"], s.coarse["2021-05-07"],
                      one)
    expected = np.where(clouded, raster.read_raster(one), raster.read_raster(two))
    assert np.abs(fused - expected).max() <= 1.01e-4           # one int16 step at most
    truth = raster.read_raster(s.truth["2021-05-07"])
    rmse = np.sqrt(np.mean((fused - truth) ** 2))
    assert rmse < np.sqrt(np.mean((raster.read_raster(one) - truth) ** 2))


def test_nodata_where_no_pair_within_reach_is_clear(sample_series, tmp_path):
    s = sample_series
    plan = sample_plan(s, ["2021-06-12"])
    # keep only the clouded pairs of 06-06 and 06-18 (their clouds overlap at the centre)
    entry = plan.entries[0]
    kept = tuple(c for c in entry.candidates
                 if {plan.pairs[i].date.isoformat() for i in c.pairs}
                 <= {"2021-06-06", "2021-06-18"})
    plan.entries[0] = series.PlanEntry(entry.date, entry.coarse, kept)
    info = raster.raster_info(s.fine["2021-06-06"])
    result = series.run_series(plan, info, series.SeriesSettings(), str(tmp_path / "out"))
    fused = raster.read_raster(result.outputs[entry.date])
    masks = [raster.read_raster(s.masks[d])[0] != 0 for d in ("2021-06-06", "2021-06-18")]
    np.testing.assert_array_equal(~np.isfinite(fused).all(0), masks[0] & masks[1])
    assert (masks[0] & masks[1]).sum() > 100


def test_cancel_keeps_finished_dates_and_rerun_resumes(sample_series, tmp_path):
    s = sample_series
    # short reach: 05-01 is its own (clear) fine image, 05-27 uses the 05-25 pair alone
    plan = sample_plan(s, ["2021-05-01", "2021-05-27"], series.FINE_DATES_COPY, max_gap_days=3)
    info = raster.raster_info(s.fine["2021-05-01"])
    folder = str(tmp_path / "out")
    # both dates are one run (computed tile by tile together): a cancel during its last
    # tile publishes neither
    assert [len(run) for run in series.batches(plan.entries)] == [2]
    seen = []
    with pytest.raises(tiling.Canceled):
        series.run_series(plan, info, series.SeriesSettings(), folder, progress=seen.append,
                          is_canceled=lambda: bool(seen) and seen[-1] > 0)
    assert seen[-1] == 1.0 and sorted(os.listdir(folder)) == []
    # runs of one date: the cancel comes once the first date is published, which stays
    first = os.path.join(folder, "fused_2021-05-01.tif")
    with pytest.raises(tiling.Canceled):
        series.run_series(plan, info, series.SeriesSettings(), folder,
                          is_canceled=lambda: os.path.exists(first), batch_dates=1)
    assert sorted(os.listdir(folder)) == ["fused_2021-05-01.tif", "fused_series.json"]
    np.testing.assert_array_equal(raster.read_raster(first),
                                  raster.read_raster(s.fine["2021-05-01"]))
    resumed = series.run_series(plan, info, series.SeriesSettings(), folder)
    assert (resumed.reused, resumed.written) == ([D(2021, 5, 1)], [D(2021, 5, 27)])
    again = series.run_series(plan, info, series.SeriesSettings(), folder)
    assert again.written == [] and len(again.reused) == 2
    os.utime(s.coarse["2021-05-01"])        # an input changed: its date is written again
    changed = series.run_series(plan, info, series.SeriesSettings(), folder)
    assert changed.written == [D(2021, 5, 1)]

    stack = series_outputs.write_stack(os.path.join(folder, "fused_series.vrt"),
                                       changed.outputs, info)
    ds = gdal.Open(stack)
    assert ds.RasterCount == 12
    band = ds.GetRasterBand(8)
    assert band.GetMetadataItem("DATE") == "2021-05-27"
    assert band.GetMetadataItem("BAND_NAME") == "green"
    assert band.GetDescription() == "2021-05-27 green"
    date_file = gdal.Open(changed.outputs[D(2021, 5, 27)])   # kept: its bands need it
    np.testing.assert_array_equal(band.ReadAsArray(),
                                  date_file.GetRasterBand(2).ReadAsArray())
    sources = series_outputs.write_sources(str(tmp_path / "sources.csv"), changed)
    with open(sources) as stream:
        rows = list(csv.DictReader(stream))
    assert rows[0]["date"] == "2021-05-01" and rows[0]["pairs"] == "2021-05-01 (fine image)"
    assert float(rows[0]["share"]) == 1.0
    assert (rows[1]["date"], rows[1]["pairs"], rows[1]["gap_days"]) == (
        "2021-05-27", "2021-05-25", "-2")
    assert float(rows[1]["share"]) == 1.0 and float(rows[1]["nodata_share"]) == 0.0
    # the trust figures of the pair (core/trust.py); a copied fine image has none
    assert rows[0]["correlation"] == "" and rows[1]["trust"].startswith("used")
    assert 0.9 < float(rows[1]["correlation"]) <= 1 and 0 <= float(rows[1]["temporal_ratio"]) <= 1
    html = series_outputs.write_series_report(str(tmp_path / "report.html"), changed, info)
    text = open(html).read()
    assert "Time series" in text and "2021-05-27" in text and "<svg" in text


def test_a_tile_of_a_run_of_dates_is_a_picklable_task(sample_series):
    """What a cluster driver ships per tile of a run of dates: the DateTasks and a dict of
    states per date; each date as computed alone (the pairs' shared work changes nothing)."""
    import pickle
    s = sample_series
    plan = sample_plan(s, ["2021-05-07", "2021-05-09"])
    states = series.SeriesStates(plan, raster.raster_info(s.fine["2021-05-01"]),
                                 series.SeriesSettings())
    assert series.batches(plan.entries) == [plan.entries]
    tasks = [series.date_task(entry, states) for entry in plan.entries]
    lazy = [series.DateStates(entry, states) for entry in plan.entries]
    resolved = [{c: d[c] for c in e.candidates} for e, d in zip(plan.entries, lazy)]
    tile = next(tiling.iter_tiles(96, 96, 64, states.halo))
    alone = [series.predict_date_tile(task, d, tile) for task, d in zip(tasks, lazy)]
    here = list(series.predict_dates_tile(tasks, lazy, tile, lazy=True))
    there = series.predict_dates_tile(*pickle.loads(pickle.dumps((tasks, resolved, tile))))
    for one, together, shipped in zip(alone, here, there):
        for a, b, c in zip(one, together, shipped):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, c)
        assert one[0].shape == (6, 64, 64) and np.isfinite(one[0]).all()


def test_the_offset_rule_gets_the_dates_the_series_knows(sample_series, tmp_path):
    """Files named without dates (dated by a DATES table): each date's state still knows the
    gap between its coarse image and the pair's, as with dated names."""
    import shutil
    s = sample_series
    fine = [series.Image(shutil.copy(s.fine["2021-05-01"], tmp_path / "fine_a.tif"),
                         D(2021, 5, 1))]
    coarse = [series.Image(shutil.copy(s.coarse[d], tmp_path / f"coarse_{k}.tif"),
                           D.fromisoformat(d)) for k, d in enumerate(("2021-05-01", "2021-05-07"))]
    plan = series.make_plan(fine, coarse, {}, [D(2021, 5, 7)], 64)
    states = series.SeriesStates(plan, raster.raster_info(s.fine["2021-05-01"]),
                                 series.SeriesSettings())
    entry = plan.entries[0]
    state = series.DateStates(entry, states)[entry.candidates[0]]
    assert [t.gap_days for t in state.pair_trust] == [6.0]
