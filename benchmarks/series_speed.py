"""Speed and peak memory of a fused series against one single-date fuse (not part of the tests).

A generated season (``make_sample_series``, no clouds): 4 fine/coarse pairs and 30 coarse-only
dates between them. Each job runs in a fresh process (its own peak RSS):
  fuse          stfusion's fuse of one date from its nearest pair,
  fuse_floor    the I/O floor of that fuse: read its inputs tile by tile and write the output
                with the same GDAL options (no arithmetic),
  series        fuse_series of the 30 dates (two pairs around each date),
  series_floor  the I/O floor of the series: per date, read the date's inputs (two pairs and
                its coarse image) and write its output.
    python benchmarks/series_speed.py [--size 2000] [--dates 30]
Writes benchmarks/out/series_speed.md.
"""
import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "build" / "plugins"))
PAIRS = 4


def scene(folder, size, dates):
    from stfusion.core.sample_scene import make_sample_series
    marker = Path(folder) / "series.json"
    if not marker.exists():
        print(f"generating a {size}x{size}x6 season in {folder} ...", flush=True)
        every = dates // (PAIRS - 1) + 1          # 4 pairs with the dates between them
        made = make_sample_series(folder, size=size, coarse_dates=every * (PAIRS - 1) + 1,
                                  fine_every=every, clouds={})
        marker.write_text(json.dumps({"fine": made.fine, "coarse": made.coarse}))
    return json.loads(marker.read_text())


def plan_of(description, dates):
    from stfusion.core import series
    fine = [series.Image(p, dt.date.fromisoformat(d)) for d, p in description["fine"].items()]
    coarse = [series.Image(p, dt.date.fromisoformat(d))
              for d, p in description["coarse"].items()]
    plan = series.make_plan(fine, coarse, {})
    plan.entries = plan.entries[:dates]
    return plan


def job(name, folder, output, dates):
    import torch
    torch.set_num_threads(2)
    from stfusion.core import fusion, raster, series, tiling
    description = json.loads((Path(folder) / "series.json").read_text())
    plan = plan_of(description, dates)
    entry = plan.entries[0]
    nearest = plan.pairs[entry.candidates[1].pairs[0]]
    tile = tiling.whole_block_tile(tiling.DEFAULT_TILE, 15)

    def copy(*arrays):
        return arrays[0]
    started = time.time()
    if name == "fuse":
        fusion.fuse_files(nearest.fine, nearest.coarse, entry.coarse, output)
    elif name == "fuse_floor":
        tiling.process_files([nearest.fine, nearest.coarse, entry.coarse], output,
                             nearest.fine, copy, 0, tile)
    elif name == "series":
        series.run_series(plan, raster.raster_info(nearest.fine), series.SeriesSettings(),
                          output)
    elif name == "series_floor":
        for e in plan.entries:
            before, after = (plan.pairs[i] for i in e.candidates[0].pairs)
            tiling.process_files([before.fine, before.coarse, after.fine, after.coarse,
                                  e.coarse], os.path.join(output, f"{e.date}.tif"),
                                 before.fine, copy, 0, tile)
    seconds = time.time() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak}))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--dates", type=int, default=30)
    parser.add_argument("--work", default=str(ROOT / "build" / "bench_series"))
    args = parser.parse_args()
    folder = Path(args.work) / f"season_{args.size}"
    scene(str(folder), args.size, args.dates)
    measured = {}
    for name in ("fuse_floor", "fuse", "series_floor", "series"):
        output = Path(args.work) / f"{name}_{args.size}"
        if name.startswith("series"):
            output.mkdir(parents=True, exist_ok=True)
        else:
            output = output.with_suffix(".tif")
        result = subprocess.run([sys.executable, __file__, "--job", name, str(folder),
                                 str(output), str(args.dates)], capture_output=True, text=True)
        if result.returncode != 0:
            print(result.stderr[-3000:])
            return
        measured[name] = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"{name:13s} {measured[name]['seconds']:8.1f} s  peak RSS "
              f"{measured[name]['peak_rss_mb']:6.0f} MB", flush=True)
    fuse, series = measured["fuse"]["seconds"], measured["series"]["seconds"]
    lines = [f"{args.size}x{args.size}x6, {args.dates} dates from {PAIRS} pairs "
             f"(two-pair fusion on every date), 2 CPU cores", "",
             "| job | time (s) | ratio to its I/O floor | peak RSS (MB) |", "|---|---|---|---|"]
    for name, floor in (("fuse", "fuse_floor"), ("series", "series_floor")):
        lines.append(f"| {name} | {measured[name]['seconds']:.1f} | "
                     f"{measured[name]['seconds'] / measured[floor]['seconds']:.1f} "
                     f"({measured[floor]['seconds']:.1f} s) | "
                     f"{measured[name]['peak_rss_mb']:.0f} |")
    lines += ["", f"series / one fuse: {series / fuse:.1f}x for {args.dates} dates "
                  f"({series / fuse / args.dates:.2f} fuse per date)"]
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "series_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--job":
        job(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()
