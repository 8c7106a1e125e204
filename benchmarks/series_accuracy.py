"""Leave-dates-out accuracy of stfusion:fuse_series on the real sets (not part of the tests).

For every set in ../shared/data with more than two fine dates: the fine dates are split into
every other one (two ways: even positions known and odd ones predicted, then the reverse).
The known fine images (with their cloud masks) and ALL coarse images go into the series; each
held-out date that has a coarse image is predicted and scored against its real fine image.
Per date, on the pixels valid in the reference and in every method, RMSE of:
  - fuse_series (pairs chosen per date and per pixel),
  - stfusion's fuse by hand with the nearest known pair (its masked pixels as nodata),
  - F1 + (C2 - C1) with the same nearest pair.
    python benchmarks/series_accuracy.py [--sets kranj hubei_ndvi cia] [--max-gap 100]
Writes benchmarks/results/series_accuracy.md.
"""
import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "build" / "plugins"))
DATA = ROOT.parent / "shared" / "data"
TOLERANCE = 5e-5        # RMSE: half the last digit the table shows


def load_set(name):
    description = json.loads((DATA / name / "dataset.json").read_text())
    folder = DATA / name
    coarse = description.get("coarse_composites") or description["coarse"]
    period = int(description.get("coarse_period_days", 1))
    ratio = description.get("coarse_pixel_size_m", 500.0) / description["pixel_size_m"]
    return dict(fine={dt.date.fromisoformat(d): str(folder / f)
                      for d, f in description["fine"].items()},
                masks={dt.date.fromisoformat(d): str(folder / f)
                       for d, f in description.get("fine_masks", {}).items()},
                coarse={dt.date.fromisoformat(d): str(folder / f) for d, f in coarse.items()},
                period=period, ratio=ratio)


def masked_fine(path, mask, folder):
    """The fine image with its masked pixels as nodata (a plain input for fuse)."""
    from stfusion.core import raster
    if not mask:
        return path
    image = raster.read_raster(path)
    image[:, raster.read_raster(mask)[0] != 0] = np.nan
    info = raster.raster_info(path)
    return raster.write_raster(str(Path(folder) / Path(path).name), image, info.grid,
                               raster.OutputEncoding.like(info))


def rmse(prediction, reference, valid):
    return float(np.mean([np.sqrt(np.mean((p[valid] - r[valid]) ** 2))
                          for p, r in zip(prediction, reference)]))


def run_split(name, data, known, held_out, max_gap, work):
    from stfusion.core import fusion, raster, series
    fine = [series.Image(data["fine"][d], d) for d in known]
    coarse = [series.Image(p, d) for d, p in data["coarse"].items()]
    masks = {d: data["masks"][d] for d in known if d in data["masks"]}
    plan = series.make_plan(fine, coarse, masks, held_out, max_gap, data["period"])
    info = raster.raster_info(fine[0].path)
    started = time.time()
    result = series.run_series(plan, info, series.SeriesSettings(scale_ratio=data["ratio"]),
                               str(Path(work) / "series"))
    seconds = time.time() - started
    rows = []
    for entry in plan.entries:
        nearest = plan.pairs[min(range(len(plan.pairs)),
                                 key=lambda i: (abs((plan.pairs[i].date - entry.date).days),
                                                plan.pairs[i].date))]
        f1 = masked_fine(nearest.fine, nearest.mask, work)
        by_hand = str(Path(work) / f"fuse_{entry.date}.tif")
        fusion.fuse_files(f1, nearest.coarse, entry.coarse, by_hand, scale_ratio=data["ratio"])
        reference = raster.read_raster(data["fine"][entry.date])
        if entry.date in data["masks"]:
            reference[:, raster.read_raster(data["masks"][entry.date])[0] != 0] = np.nan
        fused = raster.read_raster(result.outputs[entry.date])
        hand = raster.read_raster(by_hand)
        trivial = raster.read_raster(f1) + raster.read_raster(entry.coarse) \
            - raster.read_raster(nearest.coarse)
        common = raster.valid_mask(reference, fused, hand, trivial)
        series_only = raster.valid_mask(reference, fused)
        sources = "; ".join(f"{s['pairs']} {100 * s['pixels'] / common.size:.0f} %"
                            for s in result.sources[entry.date] if s["pixels"])
        rows.append(dict(set=name, date=entry.date.isoformat(), nearest=str(nearest.date),
                         series=rmse(fused, reference, common),
                         fuse=rmse(hand, reference, common),
                         trivial=rmse(trivial, reference, common),
                         common=float(common.mean()),
                         series_all=rmse(fused, reference, series_only),
                         series_cover=float(series_only.mean()), sources=sources))
    for date, why in plan.skipped:
        print(f"  {name} {date}: left out ({why})")
    return rows, seconds


def splits(dates):
    ordered = sorted(dates)
    return [(ordered[0::2], ordered[1::2]), (ordered[1::2], ordered[0::2])]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", nargs="+", default=["kranj", "hubei_ndvi", "cia", "lgc_flood"])
    parser.add_argument("--max-gap", type=int, default=100)
    args = parser.parse_args()
    import torch
    torch.set_num_threads(2)
    table = []
    for name in args.sets:
        data = load_set(name)
        if len(data["fine"]) <= 2:
            print(f"{name}: {len(data['fine'])} fine dates, skipped")
            continue
        for known, held_out in splits(data["fine"]):
            held_out = [d for d in held_out if any(
                0 <= (d - c).days < data["period"] for c in data["coarse"])]
            if not held_out:
                continue
            with tempfile.TemporaryDirectory() as work:
                rows, seconds = run_split(name, data, known, held_out, args.max_gap, work)
            print(f"{name}: known {[str(d) for d in known]}: {len(rows)} date(s) in "
                  f"{seconds:.1f} s")
            table += rows
    lines = ["| set | date | nearest known pair | fuse_series | fuse, nearest pair | "
             "F1 + (C2 − C1) | fuse_series − the better (1e-5) | ≤ better of the two | "
             "pixels compared | fuse_series on all its pixels (coverage) | sources |",
             "|---" * 11 + "|"]
    for r in table:
        difference = r["series"] - min(r["fuse"], r["trivial"])
        # TOLERANCE: a pair's classes come from the pixels valid in its own images, fuse's
        # from those valid in C2 as well (different k-means samples where C2 has gaps)
        ok = "yes" if difference <= TOLERANCE else "**no**"
        lines.append(f"| {r['set']} | {r['date']} | {r['nearest']} | {r['series']:.4f} | "
                     f"{r['fuse']:.4f} | {r['trivial']:.4f} | {difference * 1e5:+.1f} | {ok} | "
                     f"{100 * r['common']:.0f} % | {r['series_all']:.4f} "
                     f"({100 * r['series_cover']:.0f} %) | {r['sources']} |")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "series_accuracy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
