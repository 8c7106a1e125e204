"""How well can any per-pixel estimate made from the inputs rank the fuse's real error? A bound
for the UNCERTAINTY output's Spearman correlation on the cia and lgc_flood cases (not part of
the tests).

For each case (``--only`` name prefixes, default all cia and lgc_flood cases), with the
default fuse's prediction and UNCERTAINTY output:
- ``uncertainty``: the output's Spearman correlation with the real absolute error (all pixels
  and bands, as ``trust.uncertainty_scores`` and ``benchmarks/trust.py``);
- ``ceiling``: the real error's own local RMS over 11 x 11 pixels (``trust.py``'s ceiling);
- ``fitted``: a least-squares fit of the log error on the logs of 16 local features of the
  first pair and the prediction (F1's texture at 3 scales, the detail C1 misses, the coarse
  change and its within-block part, the departures from F1 + (C2 - C1) and from C2, the
  prediction's texture, the values, four band levels), fitted on the case's own error: more
  than any estimate from the inputs alone can know;
- ``network``: the same features through a small network (2 x 64, ReLU) fitted on the
  case's own error at half of its pixels (chosen at random), scored on the other half;
- ``methods``: the disagreement of the fuse with STARFM and FSDAF (an ensemble spread).

    python benchmarks/uncertainty_bound.py [--data ../shared/data] [--only lgc_flood]

Writes benchmarks/results/uncertainty_bound.md.
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

import trust as trust_benchmark
from trust import local_rms

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "uncertainty_bound.md"
SITES = ("cia", "lgc_flood")


def local_mean(x: np.ndarray, r: int) -> np.ndarray:
    """Mean of the finite values of x over (2r+1)^2 windows (each band)."""
    from stfusion.core import box_filters
    return box_filters.box_mean(x, np.isfinite(x), r)


def features(prediction, f1, c1, c2, s: int) -> np.ndarray:
    """(bands, h, w, n) logs of the local features named in the module doc."""
    half = max(1, s // 2)
    change = c2 - c1
    bias = np.nanmean(c1 - f1, axis=(1, 2))[:, None, None]
    maps = [local_rms(f1 - local_mean(f1, r), r) for r in (1, 3, 5)]
    maps += [local_rms(f1 - c1 + bias, half), local_rms(change - local_mean(change, s), half),
             local_rms(change, half), local_rms(prediction - (f1 + change), 1),
             local_rms(prediction - (f1 + change), 3), local_rms(prediction - c2, 2),
             local_rms(prediction - local_mean(prediction, 2), 2), np.abs(f1),
             np.abs(prediction)]
    levels = [np.broadcast_to(np.sqrt(np.nanmean(m * m, axis=(1, 2)))[:, None, None], m.shape)
              for m in maps[3:7]]
    return np.log(np.stack(maps + levels, -1) + 1e-4)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    def rank(x):
        return np.argsort(np.argsort(x, kind="stable"), kind="stable")
    return float(np.corrcoef(rank(a), rank(b))[0, 1])


def fitted(x: np.ndarray, error: np.ndarray) -> float:
    design = np.c_[x, np.ones(len(x))]
    weights = np.linalg.lstsq(design, np.log(error + 1e-3), rcond=None)[0]
    return spearman(design @ weights, error)


def network(x: np.ndarray, error: np.ndarray, seed: int = 0, steps: int = 1500) -> float:
    import torch
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(error))
    train, test = order[:len(order) // 2], order[len(order) // 2:]
    mean, std = x[train].mean(0), x[train].std(0) + 1e-6
    inputs = torch.tensor((x - mean) / std, dtype=torch.float32)
    target = torch.tensor(np.log(error + 1e-3), dtype=torch.float32)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 64), torch.nn.ReLU(),
                              torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    optimiser = torch.optim.Adam(net.parameters(), 3e-3)
    for step in range(steps):
        batch = torch.as_tensor(rng.choice(train, 8192))
        loss = ((net(inputs[batch])[:, 0] - target[batch]) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        return spearman(net(inputs[test])[:, 0].numpy(), error[test])


def run_case(case: dict, work: Path) -> dict:
    from stfusion.core import fsdaf, fusion, methods, raster, starfm, trust
    read = raster.read_raster
    inputs = (case["fine_t1"], case["coarse_t1"], case["coarse_t2"])
    out = lambda name: str(work / f"{name}.tif")  # noqa: E731
    two = dict(fine_t3=case["fine_t3"], coarse_t3=case["coarse_t3"])
    fusion.fuse_files(*inputs, out("fuse"), uncertainty=out("uncertainty"), **two)
    s = case["ratio"]
    methods.fuse_files("starfm", starfm.StarfmParams(window=starfm.window_for_scale_ratio(s)),
                       *inputs, out("starfm"), **two)
    others = [out("starfm")]
    if not case["fine_t3"]:           # FSDAF takes one pair
        methods.fuse_files("fsdaf", fsdaf.FsdafParams(scale_ratio=s), *inputs, out("fsdaf"))
        others.append(out("fsdaf"))
    prediction, reference = read(out("fuse")), read(case["reference"])
    others = [read(path) for path in others]
    error = np.abs(prediction - reference)
    valid = np.isfinite(error).all(0) & np.isfinite(read(out("uncertainty"))).all(0) \
        & np.isfinite(sum(others)).all(0)
    each = lambda x: x[:, valid].ravel()  # noqa: E731
    x = features(prediction, *(read(p) for p in inputs), int(round(s)))
    x = x[:, valid].reshape(-1, x.shape[-1])
    spread = np.sqrt(sum(local_mean((prediction - o) ** 2, 1) for o in others))
    return {"uncertainty": spearman(each(read(out("uncertainty"))), each(error)),
            "ceiling": spearman(each(local_rms(error, trust_benchmark.CEILING_RADIUS)),
                                each(error)),
            "fitted": fitted(x, each(error)), "network": network(x, each(error)),
            "methods": spearman(each(spread), each(error)),
            "share_below": trust.uncertainty_scores(prediction, read(out("uncertainty")),
                                                    reference)["share_below"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=trust_benchmark.DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--only", nargs="*", default=list(SITES), help="case name prefixes")
    args = parser.parse_args()
    import torch
    torch.set_num_threads(2)
    rows = ["| case | UNCERTAINTY | ceiling (error's own 11x11 RMS) | fitted to the case's "
            "error (least squares) | fitted (network, held-out half) | fuse vs STARFM/FSDAF "
            "| share below |", "|---|---|---|---|---|---|---|"]
    for case in trust_benchmark.shared_cases(args.data):
        if case["site"] not in SITES or not any(case["name"].startswith(p) for p in args.only):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            r = run_case(case, Path(tmp))
        rows.append(f"| {case['name']} | {r['uncertainty']:.2f} | {r['ceiling']:.2f} | "
                    f"{r['fitted']:.2f} | {r['network']:.2f} | {r['methods']:.2f} | "
                    f"{r['share_below']:.0%} |")
        print(rows[-1], flush=True)
    text = "Spearman correlation with the real absolute error, all pixels and bands\n\n" \
        + "\n".join(rows) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
