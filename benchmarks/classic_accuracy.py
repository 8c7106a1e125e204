"""Accuracy, time and memory of the classic baselines (STARFM, FSDAF) on the real datasets.

Runs ``core.starfm.fuse_files`` and ``core.fsdaf.fuse_files`` (GeoTIFF in, GeoTIFF out,
block-wise) on every case of every dataset of the shared data folder, each run in a fresh
subprocess so that its peak RSS is its own. Prints a Markdown table and writes it to
``--out`` (default ``benchmarks/classic_accuracy.md``).

RMSE: per band sqrt(mean((F - R)^2)) over the pixels valid in every input and in the
reference, then the mean over bands (reflectance). Time: wall clock and CPU time of the
fusion call (imports excluded, torch imported beforehand; the fastest of ``--repeat``
runs); peak RSS of the subprocess.

    python benchmarks/classic_accuracy.py [--data DIR] [--datasets cia lgc_flood] [--repeat 3]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# coarse pixel / fine pixel of each dataset (cia: 500 m MODIS on 50 m; lgc: 16x16 blocks)
SCALE_RATIO = {"cia": 10, "lgc_flood": 16}
COARSE_PIXEL_M = 500.0

# published Python implementations on the same cases (RMSE, seconds on 2 cores)
TARGETS = {
    ("fsdaf", "cia", 0): (0.0337, 21.0), ("fsdaf", "cia", 1): (0.0353, 21.0),
    ("fsdaf", "cia", 2): (0.0434, 21.0),
    ("fsdaf", "lgc_flood", 0): (0.0201, 73.0), ("fsdaf", "lgc_flood", 1): (0.0156, 105.0),
    ("starfm", "cia", 0): (0.0361, 80.0), ("starfm", "cia", 1): (0.0380, 80.0),
    ("starfm", "cia", 2): (0.0473, 80.0),
    ("starfm", "lgc_flood", 0): (0.0231, 105.0), ("starfm", "lgc_flood", 1): (0.0166, 105.0),
}
PEERS = {"fsdaf": "FSDAF public Python", "starfm": "starfm4py"}


def _import_package():
    plugins = ROOT / "build" / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    if not (plugins / "stfusion").exists():
        os.symlink(ROOT, plugins / "stfusion")
    if str(plugins) not in sys.path:
        sys.path.insert(0, str(plugins))


def mean_rmse(pred, ref, *inputs) -> float:
    import numpy as np
    from stfusion.core import raster
    valid = raster.valid_mask(pred, ref, *inputs)
    try:
        from stfusion.core import metrics
        pred = np.where(valid, pred, np.nan)
        return float(np.mean(metrics.rmse(pred, ref)))
    except (ImportError, AttributeError):
        return float(np.mean([np.sqrt(np.mean((p[valid] - r[valid]) ** 2))
                              for p, r in zip(pred, ref)]))


def run_one(data: Path, dataset: str, case_index: int, method: str, repeat: int = 1) -> dict:
    """One fusion in this process; returns the measurements."""
    _import_package()
    try:
        import torch  # imported beforehand: not part of the timing
        del torch
    except ImportError:
        pass
    from stfusion.core import fsdaf, raster, starfm

    meta = json.loads((data / dataset / "dataset.json").read_text())
    case = meta["cases"][case_index]
    def fine(date):
        return str(data / dataset / meta["fine"][date])

    def coarse(date):
        return str(data / dataset / meta["coarse"][date])
    t1 = case["t1"]
    ratio = SCALE_RATIO.get(dataset, COARSE_PIXEL_M / float(meta.get("pixel_size_m", 30)))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.tif")
        inputs = [fine(t1[0]), coarse(t1[0]), coarse(case["t2"])]
        if len(t1) > 1:
            inputs += [fine(t1[1]), coarse(t1[1])]
        if method == "fsdaf" and len(t1) > 1:
            return {"skipped": "FSDAF uses one pair"}
        wall = cpu = float("inf")
        for _ in range(max(1, repeat)):   # the fastest of `repeat` runs (shared machines)
            w0, c0 = time.perf_counter(), time.process_time()
            if method == "starfm":
                starfm.fuse_files(inputs[0], inputs[1], inputs[2], out,
                                  *(inputs[3:5] if len(t1) > 1 else ()))
            else:
                fsdaf.fuse_files(*inputs, out, params=fsdaf.FsdafParams(scale_ratio=ratio))
            wall = min(wall, time.perf_counter() - w0)
            cpu = min(cpu, time.process_time() - c0)
        pred = raster.read_raster(out)
    ref = raster.read_raster(fine(case["t2"]))
    arrays = [raster.read_raster(p) for p in inputs]
    base = arrays[0] + arrays[2] - arrays[1]
    return {"rmse": mean_rmse(pred, ref, *arrays), "baseline": mean_rmse(base, ref, *arrays),
            "wall": wall, "cpu": cpu,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="*", default=None)
    parser.add_argument("--methods", nargs="*", default=["starfm", "fsdaf"])
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per case; the fastest is reported (default 1)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "classic_accuracy.md")
    parser.add_argument("--one", nargs=3, metavar=("DATASET", "CASE", "METHOD"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.data, args.one[0], int(args.one[1]), args.one[2],
                                 args.repeat)))
        return 0

    datasets = args.datasets or sorted(p.name for p in args.data.iterdir()
                                       if (p / "dataset.json").exists())
    lines = ["| method | dataset | case | t1 -> t2 | RMSE | F1+dC | peer RMSE | ratio "
             "| wall s | CPU s | peer s | speed-up | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    print(lines[0], lines[1], sep="\n", flush=True)
    for dataset in datasets:
        meta = json.loads((args.data / dataset / "dataset.json").read_text())
        for i, case in enumerate(meta["cases"]):
            for method in args.methods:
                proc = subprocess.run(
                    [sys.executable, __file__, "--data", str(args.data), "--repeat",
                     str(args.repeat), "--one", dataset, str(i), method], capture_output=True, text=True, check=False)
                if proc.returncode:
                    print(proc.stderr, file=sys.stderr)
                    result = {"skipped": "failed"}
                else:
                    result = json.loads(proc.stdout.strip().splitlines()[-1])
                dates = f"{'+'.join(case['t1'])} -> {case['t2']}"
                if "skipped" in result:
                    line = (f"| {method} | {dataset} | {i} | {dates} | {result['skipped']} "
                            "| | | | | | | | |")
                else:
                    peer = TARGETS.get((method, dataset, i))
                    peer_rmse = f"{peer[0]:.4f}" if peer else ""
                    ratio = f"{result['rmse'] / peer[0]:.3f}" if peer else ""
                    peer_s = f"{peer[1]:.0f}" if peer else ""
                    speed = f"{peer[1] / result['wall']:.0f}x" if peer else ""
                    line = (f"| {method} | {dataset} | {i} | {dates} | {result['rmse']:.4f} "
                            f"| {result['baseline']:.4f} | {peer_rmse} | {ratio} "
                            f"| {result['wall']:.2f} | {result['cpu']:.2f} | {peer_s} | {speed} "
                            f"| {result['peak_rss_mb']:.0f} |")
                lines.append(line)
                print(line, flush=True)
    notes = ["", "RMSE: reflectance, per band over pixels valid everywhere, mean over bands. "
             "F1+dC: the trivial baseline F1 + C2 - C1. Peer: " +
             ", ".join(f"{k} = {v}" for k, v in PEERS.items()) +
             " (their published defaults; times on 2 cores). ratio = RMSE / peer RMSE. "
             f"Wall/CPU: the fuse_files call (GeoTIFF in/out, tiled), imports excluded, fastest "
             f"of {args.repeat} run(s). "
             "Peak RSS: the whole subprocess (Python, numpy, GDAL, torch included).",
             "FSDAF defaults: classes 4, window 21, 20 similar pixels, scale_ratio "
             f"{SCALE_RATIO} (else {COARSE_PIXEL_M:.0f} m / pixel size). STARFM defaults: "
             "window 31, classes 4, uncertainties 0.002."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines + notes) + "\n")
    print("\n".join(notes))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
