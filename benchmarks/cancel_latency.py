"""How fast a cancel takes effect, in the preparation and in the tiles (not part of the tests).

For each method a cancel is requested once 0.3 s have passed (the preparation: k-means,
statistics, sample windows) and once half of the progress is done (the tiles); the latency
is the time from the request to ``Canceled`` being raised, with nothing left in the output
folder. Example:
    python benchmarks/cancel_latency.py --size 4000
Writes a Markdown table to benchmarks/out/cancel_latency.md.
"""
import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "build" / "plugins"))


class CancelAt:
    """is_canceled/progress callables that request a cancel at a time or a progress."""

    def __init__(self, seconds=None, fraction=None):
        self.seconds, self.fraction = seconds, fraction
        self.started = time.perf_counter()
        self.requested = None

    def progress(self, fraction):
        if self.fraction is not None and fraction >= self.fraction and self.requested is None:
            self.requested = time.perf_counter()

    def is_canceled(self):
        now = time.perf_counter()
        if self.seconds is not None and self.requested is None and \
                now - self.started >= self.seconds:
            self.requested = self.started + self.seconds
        return self.requested is not None


def run(method, scene, output, cancel):
    from stfusion.core import fsdaf, fusion, methods, starfm
    d0, d1 = scene.dates[:2]
    args = (scene.fine[d0], scene.coarse[d0], scene.coarse[d1], output)
    callbacks = dict(progress=cancel.progress, is_canceled=cancel.is_canceled)
    if method == "fuse":
        fusion.fuse_files(*args, scale_ratio=scene.scale_ratio, **callbacks)
    elif method == "starfm":
        methods.fuse_files("starfm", starfm.StarfmParams(), *args, **callbacks)
    else:
        methods.fuse_files("fsdaf", fsdaf.FsdafParams(scale_ratio=scene.scale_ratio), *args,
                           **callbacks)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=4000)
    parser.add_argument("--methods", nargs="+", default=["fuse", "starfm", "fsdaf"])
    parser.add_argument("--work", default=str(ROOT / "build" / "bench_scenes"))
    parser.add_argument("--scene", help="an existing sample scene folder (only read)")
    args = parser.parse_args()
    import torch
    torch.set_num_threads(2)
    from stfusion.core.sample_scene import load_sample_scene, make_sample_scene
    from stfusion.core.tiling import Canceled
    scene_dir = Path(args.scene or Path(args.work) / f"scene_{args.size}")
    if (scene_dir / "dataset.json").exists():
        scene = load_sample_scene(str(scene_dir))
    else:
        print(f"generating a {args.size}x{args.size}x6 scene in {scene_dir} ...", flush=True)
        scene = make_sample_scene(str(scene_dir), size=args.size)
    out_dir = Path(args.work) / "cancel_out"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for method in args.methods:
        for label, cancel in (("preparation (at 0.3 s)", lambda: CancelAt(seconds=0.3)),
                              ("tiles (at 50 % progress)", lambda: CancelAt(fraction=0.5))):
            request = cancel()
            try:
                run(method, scene, str(out_dir / f"{method}.tif"), request)
                latency = float("nan")
            except Canceled:
                latency = time.perf_counter() - request.requested
            left = os.listdir(out_dir)
            rows.append((method, label, latency, len(left)))
            print(f"{method:7s} {label:26s} latency {latency:6.2f} s, files left {len(left)}",
                  flush=True)
    table = [f"Cancel latency on a {args.size}x{args.size}x6 scene (seconds from the request "
             "to `Canceled`; files left in the output folder).", "",
             "| method | cancel during | latency (s) | files left |", "|---|---|---|---|"]
    table += [f"| {m} | {w} | {t:.2f} | {n} |" for m, w, t, n in rows]
    target = ROOT / "benchmarks" / "out" / "cancel_latency.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(table) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
