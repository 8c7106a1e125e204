"""Every method of the plugin on every case of the real datasets: accuracy, time, memory.

Methods: F1 copy, F1 + (C2 - C1), STARFM, FSDAF, fuse (default model), fuse (paper model).
Each (case, method) runs in a fresh subprocess through the same file-based core functions the
Processing algorithms call, so its time and peak RSS are its own; accuracy is scored with the
project's evaluate code (``core.metrics.evaluate_files``) against the real fine image of t2.

    python benchmarks/accuracy_real_data.py [--data ../shared/data] [--methods ...] [--out FILE]

Writes a Markdown table (default ``benchmarks/results/accuracy.md``).
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peak_memory import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "build" / "plugins"))
sys.path.insert(0, str(ROOT / "scripts"))
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "accuracy.md"
METHODS = ("copy", "coarse_change", "starfm", "fsdaf", "fuse", "fuse_paper")
LABELS = {"copy": "F1 copy", "coarse_change": "F1 + (C2 - C1)", "starfm": "STARFM",
          "fsdaf": "FSDAF", "fuse": "fuse (default)", "fuse_paper": "fuse (paper DCNN)"}
# the published Python implementations, same cases (../shared/ACCURACY_NOTES.md)
REFERENCE_RMSE = {"FSDAF (public Python)": {"cia 0": 0.0337, "cia 1": 0.0353, "cia 2": 0.0434,
                                            "lgc_flood 0": 0.0201, "lgc_flood 1": 0.0156},
                  "starfm4py": {"cia 0": 0.0361, "cia 1": 0.0380, "cia 2": 0.0473,
                                "lgc_flood 0": 0.0231, "lgc_flood 1": 0.0166},
                  "ESTARFM (2 pairs)": {"cia 3": 0.0285}}
# their run times on 2 cores (seconds): the speed-up column compares with these
REFERENCE_SECONDS = {("fsdaf", "cia"): 21.0, ("fsdaf", "lgc_flood"): 73.0,
                     ("starfm", "cia"): 80.0, ("starfm", "lgc_flood"): 105.0}

# coarse pixel / fine pixel of each site (the ones the shipped weights were trained with)
from train_default_weights import SITE_RATIO  # noqa: E402

def cases(data: Path):
    for folder in sorted(p.parent for p in data.glob("*/dataset.json")):
        description = json.loads((folder / "dataset.json").read_text())
        for index, case in enumerate(description["cases"]):
            t1 = case["t1"]
            yield {"name": f"{folder.name} {index}", "ratio": SITE_RATIO.get(
                       folder.name, 500.0 / float(description["pixel_size_m"])),
                   "fine_t1": str(folder / description["fine"][t1[0]]),
                   "coarse_t1": str(folder / description["coarse"][t1[0]]),
                   "coarse_t2": str(folder / description["coarse"][case["t2"]]),
                   "fine_t3": str(folder / description["fine"][t1[1]]) if len(t1) > 1 else None,
                   "coarse_t3": str(folder / description["coarse"][t1[1]]) if len(t1) > 1
                   else None,
                   "reference": str(folder / description["fine"][case["t2"]])}


def run_method(method: str, case: dict, output: str) -> None:
    from stfusion.core import fsdaf, fusion, methods, raster, starfm
    pair3 = dict(fine_t3=case["fine_t3"], coarse_t3=case["coarse_t3"])
    if method in ("copy", "coarse_change"):
        f1 = raster.read_raster(case["fine_t1"])
        if method == "coarse_change":
            f1 = f1 + raster.read_raster(case["coarse_t2"]) - raster.read_raster(case["coarse_t1"])
        info = raster.raster_info(case["fine_t1"])
        raster.write_raster(output, f1, info.grid, raster.OutputEncoding.like(info))
    elif method == "starfm":
        methods.fuse_files("starfm", starfm.StarfmParams(), case["fine_t1"], case["coarse_t1"],
                           case["coarse_t2"], output, **pair3)
    elif method == "fsdaf":
        methods.fuse_files("fsdaf", fsdaf.FsdafParams(scale_ratio=case["ratio"]),
                           case["fine_t1"], case["coarse_t1"], case["coarse_t2"], output)
    else:
        fusion.fuse_files(case["fine_t1"], case["coarse_t1"], case["coarse_t2"], output,
                          scale_ratio=case["ratio"],
                          architecture="paper" if method == "fuse_paper" else None, **pair3)


def child(method: str, case_json: str) -> None:
    import torch
    torch.set_num_threads(2)
    from stfusion.core import metrics
    case = json.loads(case_json)
    with tempfile.TemporaryDirectory() as work:
        output = str(Path(work) / "prediction.tif")
        started, cpu = time.perf_counter(), time.process_time()
        run_method(method, case, output)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        evaluation = metrics.evaluate_files(output, case["reference"],
                                            ratio=1.0 / case["ratio"])
    scores = {key: evaluation.mean[key] for key in ("rmse", "ssim", "ergas", "sam")}
    peak_mb = peak_rss_mb()
    print(json.dumps(dict(scores, seconds=seconds, cpu_seconds=cpu_seconds, peak_mb=peak_mb)))


def measure(method: str, case: dict):
    result = subprocess.run([sys.executable, __file__, "--child", method, json.dumps(case)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        print(f"{case['name']} {method} failed:\n{result.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def tables(results, methods):
    names = list(dict.fromkeys(name for name, _ in results))
    pivot = ["| case | " + " | ".join(LABELS[m] for m in methods)
             + " | " + " | ".join(REFERENCE_RMSE) + " |",
             "|---" * (1 + len(methods) + len(REFERENCE_RMSE)) + "|"]
    for name in names:
        row = [results.get((name, m)) for m in methods]
        best = min((r["rmse"] for r in row if r), default=None)
        cells = [("–" if r is None else
                  (f"**{r['rmse']:.4f}**" if r["rmse"] == best else f"{r['rmse']:.4f}"))
                 for r in row]
        cells += [f"{ref[name]:.4f}" if name in ref else "–" for ref in REFERENCE_RMSE.values()]
        pivot.append(f"| {name} | " + " | ".join(cells) + " |")
    detail = ["| case | method | RMSE | SSIM | ERGAS | SAM (deg) | time (s) | speed-up vs "
              "public Python | peak RSS (MB) |", "|---|---|---|---|---|---|---|---|---|"]
    for (name, method), r in results.items():
        if r:
            public = REFERENCE_SECONDS.get((method, name.split()[0]))
            speedup = f"{public / r['seconds']:.0f}x" if public else "–"
            detail.append(f"| {name} | {LABELS[method]} | {r['rmse']:.4f} | {r['ssim']:.3f} | "
                          f"{r['ergas']:.3f} | {r['sam']:.2f} | {r['seconds']:.2f} | {speedup} | "
                          f"{r['peak_mb']:.0f} |")
    return ("RMSE (reflectance, mean over bands; best per case in bold):\n\n"
            + "\n".join(pivot) + "\n\nAll metrics, time and peak memory:\n\n"
            + "\n".join(detail) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    results = {}
    for case in cases(args.data):
        for method in args.methods:
            if method == "fsdaf" and case["fine_t3"]:
                continue  # FSDAF takes one pair
            results[(case["name"], method)] = measure(method, case)
            r = results[(case["name"], method)]
            if r:
                print(f"{case['name']:12s} {LABELS[method]:18s} RMSE {r['rmse']:.4f} "
                      f"{r['seconds']:6.2f} s {r['peak_mb']:6.0f} MB", flush=True)
    text = tables(results, args.methods)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
