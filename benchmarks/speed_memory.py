"""Speed and peak memory of the fusion methods on generated full scenes, each beside its I/O
floor measured in the same run (not part of the tests).

The floor of a run is what no implementation can avoid: reading the method's inputs whole and
writing its output, with the same GDAL settings (the streaming block cache and decoding
threads of ``tiling.streaming_gdal_settings``, the project's GeoTIFF creation options,
``NUM_THREADS=2`` compression, the output's block size). It is measured in a fresh process
right after the method, on the same files (both find them in the page cache), so the ratio
time / floor compares like with like whatever the machine and its load. Each method also
runs in a fresh process, so its peak RSS is its own. Example:

    python benchmarks/speed_memory.py --sizes 2000 4000 8000 --methods fuse starfm fsdaf

``--threads N`` (default 2) sets torch's threads, the chunk threads of the moving-window
methods (``STFUSION_THREADS``) and GDAL's decoding threads of the method and of its floor
alike; on a machine shared with other jobs one thread keeps the CPU seconds meaningful (two
threads of small torch operations wait on each other when a core is taken away). Both wall
and CPU seconds are reported, each beside the floor's.

``--qgis-process``: each run is instead the algorithm run end to end by ``qgis_process run
stfusion:<method>`` in a fresh profile (QGIS's start-up included; the floor as above), e.g.
``--qgis-process --sizes 400 --bands 3 --methods starfm fsdaf --repeat 3`` (``--bands 3``:
the scene's green, red and NIR bands only).

Writes a Markdown table to benchmarks/results/speed_memory.md (``--append``: adds its rows).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from peak_memory import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "build" / "plugins"))

RUNNERS = {
    "fuse": "from stfusion.core import fusion; fusion.fuse_files("
            "s.fine[d0], s.coarse[d0], s.coarse[d1], out, scale_ratio=s.scale_ratio)",
    "fuse_2pairs": "from stfusion.core import fusion; fusion.fuse_files("
                   "s.fine[d0], s.coarse[d0], s.coarse[d1], out, fine_t3=s.fine[d2], "
                   "coarse_t3=s.coarse[d2], scale_ratio=s.scale_ratio)",
    "starfm": "from stfusion.core import methods, starfm; methods.fuse_files("
              "'starfm', starfm.StarfmParams(), s.fine[d0], s.coarse[d0], s.coarse[d1], out)",
    "fsdaf": "from stfusion.core import fsdaf, methods; methods.fuse_files("
             "'fsdaf', fsdaf.FsdafParams(scale_ratio=s.scale_ratio), "
             "s.fine[d0], s.coarse[d0], s.coarse[d1], out)",
    # F1 scored as a prediction of F2 (all metrics, with the coarse baseline) + HTML report
    "evaluate": "from stfusion.core import metrics, report; report.write_report("
                "metrics.evaluate_files(s.fine[d0], s.fine[d1], coarse=s.coarse[d1], "
                "ratio=s.scale_ratio), out + '.html')",
    "resample_modis": "from stfusion.core import resample; resample.resample_to_grid("
                      "s.modis[d1], s.fine[d0], out)",
}
# the rasters each method reads (its floor reads them whole); d1 is the predicted date
INPUTS = {
    "fuse": "s.fine[d0], s.coarse[d0], s.coarse[d1]",
    "fuse_2pairs": "s.fine[d0], s.coarse[d0], s.coarse[d1], s.fine[d2], s.coarse[d2]",
    "starfm": "s.fine[d0], s.coarse[d0], s.coarse[d1]",
    "fsdaf": "s.fine[d0], s.coarse[d0], s.coarse[d1]",
    "evaluate": "s.fine[d0], s.fine[d1], s.coarse[d1]",
    "resample_modis": "s.modis[d1], s.fine[d0]",
}


def _scene(scene_dir):
    from stfusion.core.sample_scene import SampleScene
    description = json.loads((Path(scene_dir) / "dataset.json").read_text())
    paths = {kind: {d: os.path.join(scene_dir, f) for d, f in description[key].items()}
             for kind, key in (("fine", "fine"), ("coarse", "coarse"), ("modis", "modis_raw"))}
    return SampleScene(scene_dir, list(description["fine"]), **paths)


def child(method, scene_dir, output):
    """Run one method; print its wall and CPU seconds and peak RSS as JSON."""
    import torch
    torch.set_num_threads(int(os.environ["STFUSION_THREADS"]))
    s = _scene(scene_dir)
    d0, d1, d2 = s.dates[:3]
    started, cpu = time.perf_counter(), time.process_time()
    exec(RUNNERS[method], {"s": s, "d0": d0, "d1": d1, "d2": d2, "out": output})
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    peak_mb = peak_rss_mb()
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_mb": peak_mb}))


def qgis_process_child(method, scene_dir, output):
    """Run ``stfusion:<method>`` through qgis_process (a fresh profile with the plugin
    enabled, untimed); print its wall and CPU seconds and peak RSS as JSON."""
    import shutil
    import tempfile
    s = _scene(scene_dir)
    d0, d1 = s.dates[:2]
    command = shutil.which("qgis_process.bin") or shutil.which("qgis_process")
    with tempfile.TemporaryDirectory() as profile:
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=profile,
                   QGIS_PLUGINPATH=str(ROOT / "build" / "plugins"))
        subprocess.run([command, "plugins", "enable", "stfusion"], env=env, check=True,
                       capture_output=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run([command, "run", f"stfusion:{method}", "--",
                        f"FINE_T1={s.fine[d0]}", f"COARSE_T1={s.coarse[d0]}",
                        f"COARSE_T2={s.coarse[d1]}", f"OUTPUT={output}"],
                       env=env, check=True, capture_output=True)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds,
                      "peak_rss_mb": after.ru_maxrss / 1024}))


def floor_child(method, scene_dir, output):
    """The I/O floor of ``method``: read its inputs whole, write its output (read back from
    the file the method wrote, untimed) with the same options; print the seconds as JSON."""
    from osgeo import gdal
    from stfusion.core import raster, tiling
    s = _scene(scene_dir)
    d0, d1, d2 = s.dates[:3]
    inputs = eval(f"[{INPUTS[method]}]", {"s": s, "d0": d0, "d1": d1, "d2": d2})
    written = output if os.path.exists(output) else None
    if written:
        values = gdal.Open(written).ReadAsArray()
        info = raster.raster_info(written)
        block = gdal.Open(written).GetRasterBand(1).GetBlockSize()
    with tiling.streaming_gdal_settings():
        started, cpu = time.perf_counter(), time.process_time()
        for path in inputs:
            raster.open_dataset(path).ReadAsArray()
        read_seconds = time.perf_counter() - started
        write_seconds = 0.0
        if written:
            started = time.perf_counter()
            target = output + ".floor.tif"
            # the project's creation options, the method's block size (square when tiled)
            with raster.AtomicGeoTiff(target, info.grid, info.band_count,
                                      raster.OutputEncoding.like(info),
                                      block_size=block[0] if block[0] == block[1] else None
                                      ) as out:
                out.ds.WriteArray(values)
            write_seconds = time.perf_counter() - started
            os.remove(target)
        cpu_seconds = time.process_time() - cpu
    print(json.dumps({"read_seconds": read_seconds, "write_seconds": write_seconds,
                      "cpu_seconds": cpu_seconds}))


def _run(threads, *args):
    env = dict(os.environ, STFUSION_THREADS=str(threads), GDAL_NUM_THREADS=str(threads))
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                            env=env)
    if result.returncode != 0:
        print(result.stderr[-2000:])
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def _green_red_nir(scene_dir: Path) -> Path:
    """A copy of the scene's fine and coarse images with bands 2-4 (green, red, NIR)."""
    from osgeo import gdal
    subset = scene_dir.parent / (scene_dir.name + "x3")
    if not (subset / "dataset.json").exists():
        subset.mkdir(exist_ok=True)
        description = json.loads((scene_dir / "dataset.json").read_text())
        for name in [*description["fine"].values(), *description["coarse"].values()]:
            gdal.Translate(str(subset / name), str(scene_dir / name), bandList=[2, 3, 4],
                           creationOptions=["TILED=YES", "COMPRESS=DEFLATE"])
        (subset / "dataset.json").write_text(json.dumps(description))
    return subset


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 4000, 8000])
    parser.add_argument("--methods", nargs="+", default=list(RUNNERS), choices=list(RUNNERS))
    parser.add_argument("--work", default=str(ROOT / "build" / "bench_scenes"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--append", action="store_true",
                        help="add the rows to the results table instead of replacing it")
    parser.add_argument("--qgis-process", action="store_true",
                        help="run each method end to end through qgis_process")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each method")
    parser.add_argument("--bands", type=int, choices=(3, 6), default=6,
                        help="3: green, red and NIR of the generated scene")
    args = parser.parse_args()
    runner = "--qgis-process-child" if args.qgis_process else "--child"
    label = " (qgis_process)" if args.qgis_process else ""
    from stfusion.core.sample_scene import make_sample_scene
    rows = []
    for size in args.sizes:
        scene_dir = Path(args.work) / f"scene_{size}"
        if not (scene_dir / "dataset.json").exists():
            print(f"generating a {size}x{size}x6 scene in {scene_dir} ...", flush=True)
            make_sample_scene(str(scene_dir), size=size)
        if args.bands == 3:
            scene_dir = _green_red_nir(scene_dir)
        for method in [m for m in args.methods for _ in range(args.repeat)]:
            output = Path(args.work) / f"{method}_{size}.tif"
            measured = _run(args.threads, runner, method, str(scene_dir), str(output))
            floor = measured and _run(args.threads, "--floor", method, str(scene_dir),
                                      str(output))
            for written in output.parent.glob(output.name + "*"):    # + report sidecars
                written.unlink()
            if not floor:
                continue
            io = floor["read_seconds"] + floor["write_seconds"]
            rows.append((method + label, f"{size}x{size}x{args.bands}", measured, io,
                         floor["cpu_seconds"]))
            print(f"{method:14s} {size:5d}^2 x{args.bands}: {measured['seconds']:7.1f} s "
                  f"(CPU {measured['cpu_seconds']:7.1f} s), floor {io:5.1f} s "
                  f"(read {floor['read_seconds']:.1f}, write {floor['write_seconds']:.1f}, "
                  f"CPU {floor['cpu_seconds']:.1f}), {measured['seconds'] / io:5.1f}x, "
                  f"peak RSS {measured['peak_rss_mb']:5.0f} MB", flush=True)
    table = [f"| {m} | {s} | {args.threads} | {r['seconds']:.1f} | {io:.1f} | "
             f"{r['seconds'] / io:.1f}x | {r['cpu_seconds']:.1f} | {cpu:.1f} | "
             f"{r['cpu_seconds'] / cpu:.1f}x | {r['peak_rss_mb']:.0f} |"
             for m, s, r, io, cpu in rows]
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / "speed_memory.md"
    if not (args.append and results.exists()):
        table = ["| method | scene (px) | threads | time (s) | I/O floor (s) | time / floor | "
                 "CPU (s) | floor CPU (s) | CPU / floor CPU | peak RSS (MB) |",
                 "|---|---|---|---|---|---|---|---|---|---|"] + table
    with open(results, "a" if args.append else "w") as out:
        out.write("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    CHILDREN = {"--child": child, "--floor": floor_child,
                "--qgis-process-child": qgis_process_child}
    if len(sys.argv) > 1 and sys.argv[1] in CHILDREN:
        CHILDREN[sys.argv[1]](*sys.argv[2:5])
    else:
        main()
