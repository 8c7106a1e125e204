"""Time to train the paper's DCNN with its Table 1 settings on one 500 x 500 pair (CPU).

    python benchmarks/train_speed.py [--size 500] [--architecture paper]
Writes benchmarks/results/train_speed.md.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

from peak_memory import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "build" / "plugins"))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=500)
    parser.add_argument("--architecture", default="paper")
    args = parser.parse_args()
    import torch
    torch.set_num_threads(2)
    from stfusion.core import training
    from stfusion.core.sample_scene import make_sample_scene
    with tempfile.TemporaryDirectory() as work:
        scene = make_sample_scene(work, size=args.size)
        date = scene.dates[0]
        started = time.perf_counter()
        result = training.train_files([(scene.fine[date], scene.coarse[date])],
                                      str(Path(work) / "model.pt"),
                                      architecture=args.architecture)  # Table 1 defaults
        seconds = time.perf_counter() - started
    peak_mb = peak_rss_mb()
    history = result.history
    line = (f"| {args.architecture} | {args.size}x{args.size}x6, 1 pair | "
            f"{history.get('epochs', len(history['train_loss']))} | {seconds:.1f} | "
            f"{peak_mb:.0f} | {history['train_loss'][-1]:.2e} / {history['val_loss'][-1]:.2e} |")
    table = ("| architecture | data | epochs | time (s) | peak RSS (MB) "
             "| final train / val loss |\n"
             "|---|---|---|---|---|---|\n" + line + "\n")
    out = ROOT / "benchmarks" / "results" / "train_speed.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
