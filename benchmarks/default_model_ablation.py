"""Accuracy of the fusion models on every case of ../shared/data (Markdown table).

Usage: python benchmarks/default_model_ablation.py [--data DIR] [--out FILE] [--paper-patches N]
       [--skip-paper] [--skip-loso]

Rows per case: F1 copy, F1 + (C2 - C1), core/fsdaf.py (one pair), stfnet without the CNN
(the FSDAF-style candidate with the small-scene fallback: the shipped default behaviour while
``use_cnn_by_default`` is False), stfnet + CNN with leave-one-site-out weights (the CNN never
saw the case's site; trained on the other sites + the simulated sample scene),
the two-pair weighting ablation, and the paper model trained at fuse time on the case's t1
pair(s) only (Table 1 settings). RMSE: per band sqrt(mean((F-R)^2)) over pixels valid in all
inputs and the reference, then mean over bands (reflectance). No method sees the t2 fine image.
"""
import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "build" / "plugins"))
sys.path.insert(0, str(REPO / "scripts"))

from stfusion.core import fsdaf, fusion, methods, raster, training  # noqa: E402
import train_default_weights as tdw  # noqa: E402

TARGETS = {  # FSDAF (one pair) / ESTARFM (two pairs), ../shared/ACCURACY_NOTES.md
    "cia 0": 0.0337, "cia 1": 0.0353, "cia 2": 0.0434, "cia 3": 0.0285,
    "lgc_flood 0": 0.0201, "lgc_flood 1": 0.0156}


def rmse(pred, ref, *inputs):
    m = raster.valid_mask(ref, pred, *inputs)
    return float(np.mean([np.sqrt(np.mean((pred[b][m] - ref[b][m]) ** 2))
                          for b in range(ref.shape[0])]))


def load_cases(data: Path):
    cases = []
    for folder in sorted(p.parent for p in data.glob("*/dataset.json")):
        js = json.loads((folder / "dataset.json").read_text())
        rd = lambda kind, t: raster.read_raster(str(folder / js[kind][t]))  # noqa: E731
        ratio = tdw.SITE_RATIO.get(folder.name, 500.0 / float(js.get("pixel_size_m", 30)))
        for i, c in enumerate(js["cases"]):
            case = dict(name=f"{folder.name} {i}", site=folder.name, ratio=ratio,
                        f1=rd("fine", c["t1"][0]), c1=rd("coarse", c["t1"][0]),
                        c2=rd("coarse", c["t2"]), ref=rd("fine", c["t2"]))
            if len(c["t1"]) > 1:
                case.update(f3=rd("fine", c["t1"][1]), c3=rd("coarse", c["t1"][1]))
            cases.append(case)
    return cases


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def run(data: Path, paper_patches: int, skip_paper: bool, skip_loso: bool):
    import torch
    torch.set_num_threads(2)
    cases = load_cases(data)
    loso = {}
    if not skip_loso:
        for site in sorted({c["site"] for c in cases}):
            model, meta, _ = tdw.train_weights(data, exclude=[site])
            loso[site] = (model, meta)
    rows = []
    for c in cases:
        f1, c1, c2, ref = c["f1"], c["c1"], c["c2"], c["ref"]
        f3, c3 = c.get("f3"), c.get("c3")
        ins = [a for a in (f1, c1, c2, f3, c3) if a is not None]
        r = {"case": c["name"], "F1 copy": rmse(f1, ref, *ins),
             "F1+dC": rmse(f1 + c2 - c1, ref, *ins)}
        pairs = [(f1, c1)] + ([(f3, c3)] if f3 is not None else [])
        if f3 is None:
            fs = methods.fuse_arrays("fsdaf", fsdaf.FsdafParams(scale_ratio=c["ratio"]),
                                     f1, c1, c2)
            r["core/fsdaf.py"] = rmse(fs, ref, *ins)
        meta = {"architecture": "stfnet"}
        pred, t = timed(lambda: methods.predict_arrays(
            fusion.prepare(None, meta, pairs, c2, scale_ratio=c["ratio"], use_cnn=False),
            f1, c1, c2, f3, c3))
        r["stfnet, no CNN"], r["time default s"] = rmse(pred, ref, *ins), t
        if f3 is not None:   # ablation: first pair only / plain mean of the two pairs
            state = fusion.prepare(None, meta, pairs, c2, scale_ratio=c["ratio"],
                                   use_cnn=False)
            pa = methods.predict_arrays(state, f1, c1, c2)
            pb = methods.predict_arrays(dataclasses.replace(state, pairs=state.pairs[1:]),
                                        f3, c3, c2)
            r["2-pair: t1 pair only"] = rmse(pa, ref, *ins)
            r["2-pair: plain mean"] = rmse((pa + pb) / 2, ref, *ins)
        if c["site"] in loso:
            model, lmeta = loso[c["site"]]
            pred = methods.predict_arrays(fusion.prepare(model, lmeta, pairs, c2,
                                                         scale_ratio=c["ratio"], use_cnn=True),
                                          f1, c1, c2, f3, c3)
            r["stfnet + CNN (LOSO weights)"] = rmse(pred, ref, *ins)
        if not skip_paper:
            (model, hist), tt = timed(lambda: training.train(pairs, "paper", epochs=50,
                                                             max_patches=paper_patches))
            pmeta = {"architecture": "paper", "band_count": f1.shape[0]}
            pred, tf = timed(lambda: methods.predict_arrays(fusion.prepare(
                model, pmeta, pairs, c2, scale_ratio=c["ratio"]), f1, c1, c2, f3, c3))
            r["paper (HPM)"], r["time paper s"] = rmse(pred, ref, *ins), tt + tf
        r["target"] = TARGETS.get(c["name"], float("nan"))
        rows.append(r)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                          for k, v in r.items()}), flush=True)
    return rows


def markdown(rows):
    cols = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for k in cols:
            v = r.get(k)
            cells.append("–" if v is None or (isinstance(v, float) and np.isnan(v)) else
                         (f"{v:.1f}" if k.startswith("time") else
                          f"{v:.4f}" if isinstance(v, float) else str(v)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=tdw.DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "default_model_ablation.md")
    ap.add_argument("--paper-patches", type=int, default=2000)
    ap.add_argument("--skip-paper", action="store_true")
    ap.add_argument("--skip-loso", action="store_true")
    args = ap.parse_args(argv)
    table = markdown(run(args.data, args.paper_patches, args.skip_paper, args.skip_loso))
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
