"""Scaling of a fused series on a local Dask cluster (not part of the tests).

A series of DATES dates sharing one fine/coarse pair (the first of a generated SIZE x SIZE x 6
scene) is fused by ``jobs.run_series`` (what ``python -m stfusion.cli series`` and
stfusion:fuse_series run); the dates' coarse images are copies of the scene's later coarse
images (distinct files, dated by a DATES table). Each configuration runs in a fresh process:
in process (today's default), its I/O floor (read every input whole, write every date's
output with the same GDAL options, in process), then a LocalCluster of N single-threaded
worker processes for each N of --workers, whose outputs are compared value by value with the
in-process ones and with the first cluster run's. Reports wall seconds, the ratio to the
floor, CPU seconds (client and workers), and the peak RSS of the client and of each worker.

    python benchmarks/cluster_scaling.py --size 4000 --dates 8 --workers 1 2

Writes benchmarks/results/cluster_scaling.md (and .json).
"""
import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from peak_memory import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "build" / "plugins"))
RESULTS = ROOT / "benchmarks" / "results"
TILE = 512


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def series_values(scene_dir: Path, dates: int, folder: Path) -> dict:
    """The series job: the scene's first pair and ``dates`` dated copies of its later coarse
    images (made once)."""
    from osgeo import gdal
    description = json.loads((scene_dir / "dataset.json").read_text())
    first, *later = list(description["fine"])
    start = dt.date.fromisoformat(first)
    rows, targets = [], []
    for k in range(dates):
        target = scene_dir / f"coarse_t2_copy_{k}.tif"
        if not target.exists():
            gdal.Translate(str(target), str(scene_dir / description["coarse"][later[k % 2]]),
                           creationOptions=["TILED=YES", "COMPRESS=DEFLATE"])
        targets.append(str(target))
        rows.append(f"{target.name},{start + dt.timedelta(days=2 * (k + 1))}")
    table = scene_dir / f"series_dates_{dates}.csv"
    table.write_text("\n".join(rows) + "\n")
    return {"FINE": [str(scene_dir / description["fine"][first])],
            "COARSE": [str(scene_dir / description["coarse"][first])] + targets,
            "DATES": str(table), "TILE_SIZE": TILE, "DEVICE": "cpu",
            "OUTPUT_FOLDER": str(folder)}


def child(mode: str, workers: int, values: dict) -> dict:
    import torch
    torch.set_num_threads(2)
    from stfusion.core import cluster, jobs
    worker_peaks, worker_cpu = [], []
    if mode == "floor":
        started, cpu = time.perf_counter(), _cpu_seconds()
        io_floor(values)
    elif mode == "in_process":
        started, cpu = time.perf_counter(), _cpu_seconds()
        jobs.run_series(values)
    else:
        with cluster.dask_client(workers=workers) as client:
            cpu_before = client.run(_cpu_seconds)
            started, cpu = time.perf_counter(), _cpu_seconds()   # the cluster's start-up aside
            jobs.run_series({**values, "SCHEDULER": client.scheduler.address})
            seconds = time.perf_counter() - started
            worker_peaks = sorted(client.run(peak_rss_mb).values())
            worker_cpu = [after - cpu_before[name]
                          for name, after in client.run(_cpu_seconds).items()]
    if mode != "cluster":
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "client_cpu_seconds": _cpu_seconds() - cpu,
            "worker_cpu_seconds": worker_cpu, "client_peak_rss_mb": peak_rss_mb(),
            "worker_peak_rss_mb": worker_peaks}


def io_floor(values: dict) -> None:
    """Read every input whole; write every date's output (the in-process run's, read back
    untimed first) with the same creation options and block size."""
    from osgeo import gdal
    from stfusion.core import raster, tiling
    in_process = Path(values["OUTPUT_FOLDER"]).parent / "out_in_process"
    written = sorted(in_process.glob("fused_*.tif"))
    arrays = [gdal.Open(str(path)).ReadAsArray() for path in written]
    with tiling.streaming_gdal_settings():
        for path in values["FINE"] + values["COARSE"]:
            raster.open_dataset(path).ReadAsArray()
        for path, array in zip(written, arrays):
            info = raster.raster_info(str(path))
            block = gdal.Open(str(path)).GetRasterBand(1).GetBlockSize()
            target = os.path.join(values["OUTPUT_FOLDER"], path.name)
            with raster.AtomicGeoTiff(target, info.grid, info.band_count,
                                      raster.OutputEncoding.like(info),
                                      block_size=block[0] if block[0] == block[1] else None
                                      ) as out:
                out.ds.WriteArray(array)


def differing_values(folder_a: str, folder_b: str) -> Optional[int]:
    """Stored values that differ between the fused dates of two output folders (None when
    a folder lacks a date of the other)."""
    from osgeo import gdal
    import numpy as np
    names = sorted(p.name for p in Path(folder_a).glob("fused_*.tif"))
    if not names or names != sorted(p.name for p in Path(folder_b).glob("fused_*.tif")):
        return None
    return sum(int(np.count_nonzero(gdal.Open(os.path.join(folder_a, n)).ReadAsArray()
                                    != gdal.Open(os.path.join(folder_b, n)).ReadAsArray()))
               for n in names)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=4000)
    parser.add_argument("--dates", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--work", default=str(ROOT / "build" / "bench_scenes"))
    parser.add_argument("--child", nargs=3, metavar=("MODE", "WORKERS", "FOLDER"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    scene_dir = Path(args.work) / f"scene_{args.size}"
    work = Path(args.work) / "cluster_scaling"
    if args.child:
        values = series_values(scene_dir, args.dates, Path(args.child[2]))
        print(json.dumps(child(args.child[0], int(args.child[1]), values)))
        return
    from stfusion.core.sample_scene import make_sample_scene
    if not (scene_dir / "dataset.json").exists():
        print(f"generating a {args.size}x{args.size}x6 scene in {scene_dir} ...", flush=True)
        make_sample_scene(str(scene_dir), size=args.size)
    shutil.rmtree(work, ignore_errors=True)
    runs = [("in_process", 0), ("floor", 0)] + [("cluster", n) for n in args.workers]
    results = []
    for mode, workers in runs:
        folder = work / (f"out_cluster_{workers}" if mode == "cluster" else f"out_{mode}")
        done = subprocess.run([sys.executable, __file__, "--size", str(args.size), "--dates",
                               str(args.dates), "--work", args.work, "--child", mode,
                               str(workers), str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-3000:])
            continue
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        measured.update(mode=mode, workers=workers)
        if mode == "cluster":
            first = work / f"out_cluster_{args.workers[0]}"
            measured["values_differing_from_in_process"] = differing_values(
                str(work / "out_in_process"), str(folder))
            measured["values_differing_from_first_cluster_run"] = differing_values(
                str(first), str(folder))
        results.append(measured)
        print(f"{mode:10s} workers={workers}: {measured['seconds']:7.1f} s, client peak "
              f"{measured['client_peak_rss_mb']:.0f} MB, workers "
              f"{[round(m) for m in measured['worker_peak_rss_mb']]} MB", flush=True)
    write_table(results, args)
    shutil.rmtree(work, ignore_errors=True)


def _count(value: Optional[int]) -> str:
    return "missing dates" if value is None else f"{value:,}"


def write_table(results, args):
    floor = next((r["seconds"] for r in results if r["mode"] == "floor"), None)
    megapixel_dates = args.size * args.size * args.dates / 1e6
    lines = [f"Series of {args.dates} dates sharing one pair, {args.size}x{args.size}x6, "
             f"{TILE}-px tiles, {os.cpu_count()} CPU cores (shared), no GPU", "",
             "| run | wall (s) | x I/O floor | CPU s: client + workers | s per Mpx-date | "
             "peak RSS client (MB) | peak RSS per worker (MB) | values differing from in "
             f"process / from {args.workers[0]} worker(s) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        name = {"floor": "I/O floor (read inputs, write outputs)",
                "in_process": "in process"}.get(r["mode"],
                                               f"LocalCluster, {r['workers']} worker(s)")
        ratio = f"{r['seconds'] / floor:.1f}" if floor else "–"
        cpu = f"{r['client_cpu_seconds']:.0f}" + "".join(
            f" + {c:.0f}" for c in r["worker_cpu_seconds"])
        workers = ", ".join(f"{m:.0f}" for m in r["worker_peak_rss_mb"]) or "–"
        same = " / ".join(_count(r.get(key)) for key in (
            "values_differing_from_in_process", "values_differing_from_first_cluster_run")) \
            if r["mode"] == "cluster" else "–"
        lines.append(f"| {name} | {r['seconds']:.1f} | {ratio} | {cpu} | "
                     f"{r['seconds'] / megapixel_dates:.3f} | {r['client_peak_rss_mb']:.0f} | "
                     f"{workers} | {same} |")
    values = args.size * args.size * 6 * args.dates
    lines += ["", f"Values per run: {values:,} ({args.dates} dates x 6 bands x {args.size}²). "
              "In process torch runs on two threads, a worker on one: the sums of a "
              "convolution are ordered differently, which moves a few values by one step of "
              "the int16 encoding."]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cluster_scaling.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "cluster_scaling.json").write_text(json.dumps(results, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
