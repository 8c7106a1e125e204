"""Reproduce model_weights/default.pt (stfnet) from ../shared/data and the built-in sample.

Usage: python scripts/train_default_weights.py [--data DIR] [--exclude SITE] [--out FILE]

Every site folder with a dataset.json is one scene, plus the simulated sample scene
(``make_sample_scene(size=480)``, seed 42, as site "sample"); every ordered couple of a
scene's dates that have both a fine and a coarse image is one training example (t_i pair +
coarse t_j -> fine t_j). ``--exclude`` leaves a site out (leave-one-site-out weights for
honest benchmarks).
"""
import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO.parent))          # parent holds the plugin folder ...
if REPO.name != "stfusion":                    # ... or use the build/plugins link
    sys.path.insert(0, str(REPO / "build" / "plugins"))

from stfusion.core import models, raster, training, training_scenes  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# coarse (MODIS 500 m or simulated) / fine pixel ratio of each benchmark site
SITE_RATIO = {"cia": 10.0, "lgc_flood": 16.0, "kranj": 16.0}
EPOCHS, STEPS, BATCH, LR = 60, 40, 32, 0.05
USE_CNN_BY_DEFAULT = True


def load_site(folder: Path):
    js = json.loads((folder / "dataset.json").read_text())
    dates = sorted(set(js["fine"]) & set(js["coarse"]))
    pairs = [(raster.read_raster(str(folder / js["fine"][d])),
              raster.read_raster(str(folder / js["coarse"][d]))) for d in dates]
    ratio = SITE_RATIO.get(folder.name, 500.0 / float(js.get("pixel_size_m", 30)))
    return pairs, ratio, dates


def sample_folder() -> Path:
    """The built-in simulated scene (480 px), generated once under build/."""
    folder = REPO / "build" / "train_sample_480"
    if not (folder / "dataset.json").exists():
        from stfusion.core.sample_scene import make_sample_scene
        make_sample_scene(str(folder), size=480)
    return folder


def site_folders(data: Path, exclude=()):
    """The scene folders the weights are trained on."""
    folders = sorted(p.parent for p in data.glob("*/dataset.json"))
    if "sample" not in exclude:
        folders.append(sample_folder())
    return [folder for folder in folders if folder.name not in exclude]


def scenes_of(folders):
    """Each site with its dates and grid, recorded beside the weights (reports use it to say
    when a model is scored on a scene it was trained on)."""
    scenes = []
    for folder in folders:
        js = json.loads((folder / "dataset.json").read_text())
        dates = sorted(set(js["fine"]) & set(js["coarse"]))
        grid = raster.raster_info(str(folder / js["fine"][dates[0]])).grid
        scenes.append(training_scenes.TrainingScene(folder.name, dates, grid))
    return scenes


def train_weights(data: Path, exclude=(), seed: int = 0, progress=None):
    examples, used = [], []
    for folder in site_folders(data, exclude):
        pairs, ratio, dates = load_site(folder)
        examples += training.stfnet_examples(pairs, ratio, seed=seed)
        used.append(f"{folder.name} ({len(dates)} dates: {', '.join(dates)}; ratio {ratio:g})")
    model, history = training.train(None, "stfnet", epochs=EPOCHS, batch_size=BATCH,
                                     learning_rate=LR, seed=seed, examples=examples,
                                     steps_per_epoch=STEPS, progress=progress)
    meta = {
        "architecture": "stfnet", "format_version": models.FORMAT_VERSION,
        "band_agnostic": True, "band_count": None, "band_names": None,
        "scaling": "per band: channels divided by the scene-wide std of the fine t1 band",
        "training": {k: history[k] for k in ("epochs", "batch_size", "learning_rate",
                                             "momentum", "weight_decay", "seed")},
        "steps_per_epoch": STEPS, "patch": 32,
        "final_train_loss": history["train_loss"][-1],
        "final_val_loss": history["val_loss"][-1],
        "history": {"train_loss": history["train_loss"], "val_loss": history["val_loss"]},
        "training_data": "all ordered date couples of: " + "; ".join(used),
        "excluded_sites": list(exclude),
        "trained": True,
        # leave-one-site-out benchmarks (benchmarks/default_model_ablation.py): the softmax
        # blending CNN is never worse than the FSDAF-style candidate on unseen sites and
        # slightly better on cia, so fusion uses it by default
        "use_cnn_by_default": USE_CNN_BY_DEFAULT,
    }
    return model, meta, history


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--exclude", action="append", default=[])
    ap.add_argument("--out", type=Path, default=REPO / "model_weights" / "default.pt")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(2)
    t = time.time()
    model, meta, history = train_weights(args.data, args.exclude, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    models.save_model(str(args.out), model, meta)
    training_scenes.write(str(args.out), scenes_of(site_folders(args.data, args.exclude)))
    print(f"wrote {args.out} in {time.time() - t:.0f} s; train loss "
          f"{history['train_loss'][0]:.4f} -> {history['train_loss'][-1]:.4f}, val "
          f"{history['val_loss'][0]:.4f} -> {history['val_loss'][-1]:.4f}")


if __name__ == "__main__":
    main()
