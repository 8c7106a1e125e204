"""The demo: simulate a scene, bring its MODIS onto the Landsat grid, fuse, report.

Every step runs through ``qgis_process`` exactly as a user would script it.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "build" / "plugins"))

from stfusion.core.sample_scene import make_sample_scene  # noqa: E402


def qgis_process(algorithm, **parameters):
    command = [os.environ.get("QGIS_PROCESS", "qgis_process"), "run", algorithm, "--json", "--"]
    command += [f"{name}={value}" for name, value in parameters.items()]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{algorithm} failed:\n{result.stdout}\n{result.stderr}")
    return json.loads(result.stdout)["results"]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default=str(ROOT / "demo_output"))
    parser.add_argument("--size", type=int, default=480, help="fine pixels per side")
    args = parser.parse_args()
    output = Path(args.output)
    scene = make_sample_scene(str(output / "sample_scene"), size=args.size)
    t1, t2 = scene.dates[0], scene.dates[1]
    print(f"sample scene: {scene.directory} (Landsat {t1} and {t2}, raw MODIS both dates)")

    on_grid = {}
    for date in (t1, t2):
        results = qgis_process("stfusion:resample_modis", INPUT=scene.modis[date],
                               REFERENCE=scene.fine[t1], METHOD=2, COREGISTER="true",
                               OUTPUT=output / f"modis_{date}_on_landsat_grid.tif")
        on_grid[date] = results["OUTPUT"]
        print(f"resample_modis {date}: {on_grid[date]} "
              f"(shift {results['SHIFT_X']:+.2f}, {results['SHIFT_Y']:+.2f} coarse px)")

    results = qgis_process("stfusion:fuse", FINE_T1=scene.fine[t1], COARSE_T1=on_grid[t1],
                           COARSE_T2=on_grid[t2], REFERENCE=scene.fine[t2],
                           OUTPUT=output / f"fused_{t2}.tif",
                           REPORT=output / f"fused_{t2}_report.html")
    print(f"fused image: {results['OUTPUT']}")
    print(f"report:      {results['REPORT']}")
    print(f"accuracy against the real Landsat of {t2}: RMSE {results['RMSE']:.4f}, "
          f"SSIM {results['SSIM']:.3f}, ERGAS {results['ERGAS']:.3f}, SAM {results['SAM']:.2f} deg")


if __name__ == "__main__":
    main()
