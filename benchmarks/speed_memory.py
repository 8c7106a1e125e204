"""Speed and peak memory of the fusion methods on generated full scenes (not part of the tests).

Each run happens in a fresh subprocess, so its peak RSS is its own. Example:
    python benchmarks/speed_memory.py --sizes 2000 4000 8000 --methods fuse starfm fsdaf
Writes a Markdown table to benchmarks/out/speed_memory.md.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "build" / "plugins"))

RUNNERS = {
    "fuse": "from stfusion.core import fusion; fusion.fuse_files("
            "s.fine[d0], s.coarse[d0], s.coarse[d1], out, scale_ratio=s.scale_ratio)",
    "starfm": "from stfusion.core import starfm; starfm.fuse_files("
              "s.fine[d0], s.coarse[d0], s.coarse[d1], out)",
    "fsdaf": "from stfusion.core import fsdaf; fsdaf.fuse_files("
             "s.fine[d0], s.coarse[d0], s.coarse[d1], out, "
             "params=fsdaf.FsdafParams(scale_ratio=s.scale_ratio))",
    # F1 scored as a prediction of F2 (all metrics, with the coarse baseline) + HTML report
    "evaluate": "from stfusion.core import metrics, report; report.write_report("
                "metrics.evaluate_files(s.fine[d0], s.fine[d1], coarse=s.coarse[d1], "
                "ratio=s.scale_ratio), out + '.html')",
    "resample_modis": "from stfusion.core import resample; resample.resample_to_grid("
                      "s.modis[d1], s.fine[d0], out)",
}


def child(method, scene_dir, output):
    import torch
    torch.set_num_threads(2)
    from stfusion.core.sample_scene import SampleScene
    description = json.loads((Path(scene_dir) / "dataset.json").read_text())
    paths = {kind: {d: os.path.join(scene_dir, f) for d, f in description[key].items()}
             for kind, key in (("fine", "fine"), ("coarse", "coarse"), ("modis", "modis_raw"))}
    s = SampleScene(scene_dir, list(description["fine"]), **paths)
    d0, d1 = s.dates[:2]
    out = output
    started = time.time()
    exec(RUNNERS[method], {"s": s, "d0": d0, "d1": d1, "out": out})
    seconds = time.time() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_mb}))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 4000, 8000])
    parser.add_argument("--methods", nargs="+", default=list(RUNNERS))
    parser.add_argument("--work", default=str(ROOT / "build" / "bench_scenes"))
    args = parser.parse_args()
    from stfusion.core.sample_scene import make_sample_scene
    rows = []
    for size in args.sizes:
        scene_dir = Path(args.work) / f"scene_{size}"
        if not (scene_dir / "dataset.json").exists():
            print(f"generating a {size}x{size}x6 scene in {scene_dir} ...", flush=True)
            make_sample_scene(str(scene_dir), size=size)
        for method in args.methods:
            output = Path(args.work) / f"{method}_{size}.tif"
            result = subprocess.run([sys.executable, __file__, "--child", method, str(scene_dir),
                                     str(output)], capture_output=True, text=True)
            if result.returncode != 0:
                print(result.stderr[-2000:])
                continue
            measured = json.loads(result.stdout.strip().splitlines()[-1])
            rows.append((method, size, measured["seconds"], measured["peak_rss_mb"]))
            print(f"{method:8s} {size:5d}^2 x6: {measured['seconds']:7.1f} s, "
                  f"peak RSS {measured['peak_rss_mb']:7.0f} MB", flush=True)
            for written in output.parent.glob(output.name + "*"):    # + report sidecars
                written.unlink()
    table = ["| method | scene (px) | time (s) | peak RSS (MB) |", "|---|---|---|---|"]
    table += [f"| {m} | {s}x{s}x6 | {t:.1f} | {r:.0f} |" for m, s, t, r in rows]
    out_dir = ROOT / "benchmarks" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "speed_memory.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
    else:
        main()
