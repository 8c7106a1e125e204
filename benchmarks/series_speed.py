"""Speed and peak memory of a fused series against one single-date fuse, each beside its I/O
floor measured in the same run (not part of the tests).

A generated season (``make_sample_series``, no clouds): 4 fine/coarse pairs and the target
dates between them (30 by default). Each job runs in a fresh process (its own peak RSS):
  fuse          stfusion's fuse of the first target date from its nearest pair,
  series        fuse_series of every target date (pairs chosen per date: two pairs where
                their gaps are balanced, else the nearest one),
and the I/O floor of each, as in ``speed_memory.py``: read the inputs whole (fuse: F1, C1,
C2; series: per date its coarse image and the images of the pairs it uses) and write the
output(s) with the same GDAL options, right after the job, on the same files.

    python benchmarks/series_speed.py [--size 2000] [--dates 30]

Writes benchmarks/results/series_speed.md.
"""
import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from peak_memory import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "build" / "plugins"))
PAIRS = 4


def scene(folder, size, dates):
    from stfusion.core.sample_scene import make_sample_series
    marker = Path(folder) / "series.json"
    if not marker.exists():
        print(f"generating a {size}x{size}x6 season in {folder} ...", flush=True)
        every = -(-dates // (PAIRS - 1)) + 1          # 4 pairs with the dates between them
        made = make_sample_series(folder, size=size, coarse_dates=every * (PAIRS - 1) + 1,
                                  fine_every=every, clouds={})
        marker.write_text(json.dumps({"fine": made.fine, "coarse": made.coarse}))
    return json.loads(marker.read_text())


def plan_of(folder, dates):
    from stfusion.core import series
    description = json.loads((Path(folder) / "series.json").read_text())
    fine = [series.Image(p, dt.date.fromisoformat(d)) for d, p in description["fine"].items()]
    coarse = [series.Image(p, dt.date.fromisoformat(d))
              for d, p in description["coarse"].items()]
    plan = series.make_plan(fine, coarse, {})
    plan.entries = plan.entries[:dates]
    return plan


def job(name, folder, output, dates):
    """Run the fuse or the series; print wall and CPU seconds and peak RSS as JSON."""
    import torch
    torch.set_num_threads(2)
    from stfusion.core import fusion, raster, series
    plan = plan_of(folder, dates)
    entry = plan.entries[0]
    nearest = plan.pairs[next(c for c in entry.candidates if len(c.pairs) == 1).pairs[0]]
    started, cpu = time.perf_counter(), time.process_time()
    if name == "fuse":
        fusion.fuse_files(nearest.fine, nearest.coarse, entry.coarse, output)
    else:
        series.run_series(plan, raster.raster_info(nearest.fine), series.SeriesSettings(),
                          output)
    print(json.dumps({"seconds": time.perf_counter() - started,
                      "cpu_seconds": time.process_time() - cpu,
                      "peak_rss_mb": peak_rss_mb(),
                      "pair_dates": sum(len(e.candidates[0].pairs) for e in plan.entries),
                      "two_pair_dates": sum(len(e.candidates[0].pairs) == 2
                                            for e in plan.entries)}))


def floor(name, folder, output, dates):
    """The I/O floor of the job: its inputs read whole, its outputs (read back untimed)
    written with the same options; prints the seconds as JSON."""
    from osgeo import gdal
    from stfusion.core import acquisition, raster, tiling
    plan = plan_of(folder, dates)
    if name == "fuse":
        entry = plan.entries[0]
        nearest = plan.pairs[next(c for c in entry.candidates if len(c.pairs) == 1).pairs[0]]
        units = [([nearest.fine, nearest.coarse, entry.coarse], output)]
    else:
        units = [([e.coarse] + [p for i in e.candidates[0].pairs
                                for p in (plan.pairs[i].fine, plan.pairs[i].coarse)],
                  acquisition.dated_path(output, "fused", e.date)) for e in plan.entries]
    seconds = 0.0
    with tiling.streaming_gdal_settings():
        for inputs, written in units:
            values = gdal.Open(written).ReadAsArray()
            info = raster.raster_info(written)
            block = gdal.Open(written).GetRasterBand(1).GetBlockSize()
            started = time.perf_counter()
            for path in inputs:
                raster.open_dataset(path).ReadAsArray()
            with raster.AtomicGeoTiff(written + ".floor.tif", info.grid, info.band_count,
                                      raster.OutputEncoding.like(info),
                                      block_size=block[0] if block[0] == block[1] else None
                                      ) as out:
                out.ds.WriteArray(values)
            seconds += time.perf_counter() - started
            os.remove(written + ".floor.tif")
    print(json.dumps({"seconds": seconds}))


def run(*args):
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--dates", type=int, default=30)
    parser.add_argument("--work", default=str(ROOT / "build" / "bench_series"))
    args = parser.parse_args()
    folder = Path(args.work) / f"season_{args.size}_{args.dates}"
    scene(str(folder), args.size, args.dates)
    measured = {}
    for name in ("fuse", "series"):
        output = Path(args.work) / f"{name}_{args.size}"
        if name == "series":
            output.mkdir(parents=True, exist_ok=True)
            for old in output.iterdir():          # no resume: every date is written
                old.unlink()
        else:
            output = output.with_suffix(".tif")
        measured[name] = run("--job", name, str(folder), str(output), str(args.dates))
        measured[name]["floor"] = run("--floor", name, str(folder), str(output),
                                      str(args.dates))["seconds"]
        m = measured[name]
        print(f"{name:7s} {m['seconds']:8.1f} s (CPU {m['cpu_seconds']:.1f} s), floor "
              f"{m['floor']:.1f} s, {m['seconds'] / m['floor']:.1f}x, peak RSS "
              f"{m['peak_rss_mb']:.0f} MB", flush=True)
    fuse, series = measured["fuse"], measured["series"]
    lines = [f"{args.size}x{args.size}x6, {args.dates} dates from {PAIRS} pairs "
             f"({series['two_pair_dates']} two-pair dates, {series['pair_dates']} pair-dates "
             "in all), 2 CPU cores", "",
             "| job | time (s) | CPU (s) | I/O floor (s) | time / floor | peak RSS (MB) |",
             "|---|---|---|---|---|---|"]
    for name, m in measured.items():
        lines.append(f"| {name} | {m['seconds']:.1f} | {m['cpu_seconds']:.1f} | "
                     f"{m['floor']:.1f} | {m['seconds'] / m['floor']:.1f}x | "
                     f"{m['peak_rss_mb']:.0f} |")
    lines += ["", f"series / one fuse: {series['seconds'] / fuse['seconds']:.1f}x for "
                  f"{args.dates} dates ({series['seconds'] / fuse['seconds'] / args.dates:.2f} "
                  "fuse per date)"]
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "series_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("--job", "--floor"):
        (job if sys.argv[1] == "--job" else floor)(sys.argv[2], sys.argv[3], sys.argv[4],
                                                   int(sys.argv[5]))
    else:
        main()
