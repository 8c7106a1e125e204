"""Trust, scale ratio and uncertainty of the default fuse on every shared case and on stress
cases built from ../shared/data and the sample scene.

For every case: the two trivial answers (F1 + (C2 - C1), for two pairs the better pair's;
C2 alone), STARFM, FSDAF (one pair), the default fuse as it was before the trust rule
(``use_trust=False``, the true scale ratio), and after it with SCALE_RATIO left at 0 on
files without metadata (the ratio estimated from the data), on copies whose coarse images
carry ``STFUSION_COARSE_PIXEL_SIZE`` (shared cases), and with the true ratio; the UNCERTAINTY
output is scored against the real error: Spearman rank correlation of predicted and actual
absolute error over all pixels and bands (and the mean of the per-band values), its ceiling
(the same correlation for the real error's own local RMS over 11 x 11 pixels: what knowing
the local error level exactly would reach), and the share of pixels whose error is below the
predicted one. RMSE: reflectance (NDVI for
hubei_ndvi), pixels valid in prediction and reference, per band then averaged.

Stress cases (written to a temporary folder, never into the repository):
- far pairs: hubei_ndvi 04-14 -> 10-14 (183 days), 12-26 -> 08-04 (144 days back),
  04-14 -> 12-10 (240 days) (Kranj's far pairs, 25 days, are shared cases 1 and 4);
- haze: an unmasked haze/cloud disc in F1 only (cia 0, lgc_flood 0);
- land-cover change: the sample scene 05-17 -> 06-02 (a flood on the last date);
- sensor offset: +0.03 added to C1 (cia 0, lgc_flood 1) or to C2 (cia 1);
- a two-pair case with one corrupted pair: cia 3 with a cloud over 40 % of F3.

    python benchmarks/trust.py [--data ../shared/data] [--out benchmarks/results/trust.md]
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "build" / "plugins"))
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "trust.md"
# coarse pixel / fine pixel (true values: cia 500 m MODIS on 50 m, lgc 16 x 16 block means,
# kranj 480 m on 30 m, hubei 240 m on 30 m)
TRUE_RATIO = {"cia": 10.0, "lgc_flood": 16.0, "kranj": 16.0, "hubei_ndvi": 8.0}
OFFSET = 0.03
# the uncertainty's ceiling: the Spearman correlation of the real error's own local RMS over
# 11 x 11 pixels with the real error, what a perfect estimate of the local error level reaches
CEILING_RADIUS = 5
HAZE = (0.30, 0.28, 0.27, 0.30, 0.25, 0.20)   # haze/cloud reflectance, blue..swir2


def shared_cases(data: Path):
    for folder in sorted(p.parent for p in data.glob("*/dataset.json")):
        js = json.loads((folder / "dataset.json").read_text())
        for index, case in enumerate(js["cases"]):
            yield _case(f"{folder.name} {index}", folder, js, case["t1"], case["t2"],
                        shared=True)


def _case(name, folder, js, t1, t2, **extra):
    f = lambda d: str(folder / js["fine"][d])  # noqa: E731
    c = lambda d: str(folder / js["coarse"][d])  # noqa: E731
    case = {"name": name, "site": folder.name, "ratio": TRUE_RATIO.get(folder.name),
            "coarse_pixel": float(js.get("coarse_pixel_size_m", 500)),
            "fine_t1": f(t1[0]), "coarse_t1": c(t1[0]), "coarse_t2": c(t2),
            "fine_t3": f(t1[1]) if len(t1) > 1 else None,
            "coarse_t3": c(t1[1]) if len(t1) > 1 else None, "reference": f(t2)}
    case.update(extra)
    return case


def _write_like(path: str, values: np.ndarray, like: str) -> str:
    from stfusion.core import raster
    info = raster.raster_info(like)
    return raster.write_raster(path, values.astype(np.float32), info.grid,
                               raster.OutputEncoding.like(info), info.band_names)


def _hazed(path: str, out: str, centre, radius: float, strength: float) -> str:
    """The image with a haze/cloud disc: F (1 - tau) + tau * HAZE, tau Gaussian-edged."""
    from stfusion.core import raster
    f = raster.read_raster(path)
    yy, xx = np.mgrid[:f.shape[1], :f.shape[2]]
    d = np.hypot(yy - centre[0], xx - centre[1])
    tau = strength * np.clip(1.5 - d / radius, 0, 1) ** 0.5
    haze = np.array(HAZE[:f.shape[0]] if f.shape[0] > 3 else HAZE[1:4], np.float32)
    return _write_like(out, f * (1 - tau) + tau * haze[:, None, None], path)


def _offset(path: str, out: str) -> str:
    from stfusion.core import raster
    return _write_like(out, raster.read_raster(path) + OFFSET, path)


def stress_cases(data: Path, work: Path):
    from stfusion.core.sample_scene import make_sample_scene
    load = lambda site: (data / site, json.loads((data / site / "dataset.json").read_text()))  # noqa
    hubei, hj = load("hubei_ndvi")
    cia, cj = load("cia")
    lgc, lj = load("lgc_flood")
    yield _case("far: hubei 04-14 -> 10-14", hubei, hj, ["2015-04-14"], "2015-10-14")
    yield _case("far: hubei 12-26 -> 08-04", hubei, hj, ["2015-12-26"], "2015-08-04")
    yield _case("far: hubei 04-14 -> 12-10", hubei, hj, ["2015-04-14"], "2015-12-10")
    case = _case("haze in F1: cia 0", cia, cj, ["2001-10-08"], "2001-10-17")
    case["fine_t1"] = _hazed(case["fine_t1"], str(work / "cia_haze.tif"), (90, 150), 45, 0.6)
    yield case
    case = _case("haze in F1: lgc_flood 0", lgc, lj, ["2004-11-26"], "2004-12-28")
    case["fine_t1"] = _hazed(case["fine_t1"], str(work / "lgc_haze.tif"), (300, 200), 80, 0.6)
    yield case
    scene = make_sample_scene(str(work / "sample"), size=480)
    yield {"name": "land-cover change: sample 05-17 -> 06-02", "site": "sample",
           "ratio": scene.scale_ratio, "coarse_pixel": 463.3127,
           "fine_t1": scene.fine["2021-05-17"], "coarse_t1": scene.coarse["2021-05-17"],
           "coarse_t2": scene.coarse["2021-06-02"], "fine_t3": None, "coarse_t3": None,
           "reference": scene.fine["2021-06-02"]}
    case = _case("offset +0.03 in C1: cia 0", cia, cj, ["2001-10-08"], "2001-10-17")
    case["coarse_t1"] = _offset(case["coarse_t1"], str(work / "cia_c1_offset.tif"))
    yield case
    case = _case("offset +0.03 in C2: cia 1", cia, cj, ["2001-10-17"], "2001-11-02")
    case["coarse_t2"] = _offset(case["coarse_t2"], str(work / "cia_c2_offset.tif"))
    yield case
    case = _case("offset +0.03 in C1: lgc_flood 1", lgc, lj, ["2004-12-28"], "2004-11-26")
    case["coarse_t1"] = _offset(case["coarse_t1"], str(work / "lgc_c1_offset.tif"))
    yield case
    case = _case("corrupted 2nd pair: cia 3, cloud over F3", cia, cj,
                 ["2001-10-08", "2001-11-02"], "2001-10-17")
    case["fine_t3"] = _hazed(case["fine_t3"], str(work / "cia_f3_cloud.tif"), (125, 125), 95,
                             0.85)
    yield case


def _with_metadata(path: str, size: float, work: Path) -> str:
    """A VRT of ``path`` carrying STFUSION_COARSE_PIXEL_SIZE (what resample_modis writes)."""
    from osgeo import gdal
    from stfusion.core import scale_ratio
    out = str(work / (Path(path).stem + "_meta.vrt"))
    ds = gdal.Translate(out, path, format="VRT")
    ds.SetMetadataItem(scale_ratio.METADATA_KEY, f"{size:g}")
    ds = None
    return out


def rmse(prediction: np.ndarray, reference: np.ndarray) -> float:
    valid = np.isfinite(prediction).all(0) & np.isfinite(reference).all(0)
    return float(np.mean([np.sqrt(np.mean((p[valid] - r[valid]) ** 2))
                          for p, r in zip(prediction, reference)]))


def local_rms(x: np.ndarray, r: int) -> np.ndarray:
    """The RMS of the finite values of x over (2r+1)^2 windows."""
    from stfusion.core import box_filters
    finite = np.isfinite(x)
    squares = np.where(finite, x, 0.0).astype(np.float64) ** 2
    mean_square = box_filters.box_mean(squares, finite, r)
    return np.sqrt(np.maximum(mean_square, 0.0))     # integral images round below 0


def run_case(case: dict, work: Path, classic: bool = True) -> dict:
    from stfusion.core import fsdaf, fusion, methods, raster, scale_ratio, starfm, trust
    read = raster.read_raster
    ref = read(case["reference"])
    c2 = read(case["coarse_t2"])
    pairs = [(case["fine_t1"], case["coarse_t1"])] + \
        ([(case["fine_t3"], case["coarse_t3"])] if case["fine_t3"] else [])
    row = {"coarse_change": min(rmse(read(f) + c2 - read(c), ref) for f, c in pairs),
           "coarse": rmse(c2, ref)}
    two = dict(fine_t3=case["fine_t3"], coarse_t3=case["coarse_t3"])
    inputs = (case["fine_t1"], case["coarse_t1"], case["coarse_t2"])
    out = lambda name: str(work / f"{name}.tif")  # noqa: E731
    rule = scale_ratio.resolve(case["fine_t1"], [case["coarse_t1"], case["coarse_t2"]])
    row["ratio_used"] = f"{rule.value:.3g} ({rule.source})"
    if classic:
        methods.fuse_files("starfm", starfm.StarfmParams(
            window=starfm.window_for_scale_ratio(rule.value)), *inputs, out("starfm"), **two)
        row["starfm"] = rmse(read(out("starfm")), ref)
    if classic and not case["fine_t3"]:
        methods.fuse_files("fsdaf", fsdaf.FsdafParams(scale_ratio=max(1.0, rule.value)),
                           *inputs, out("fsdaf"))
        row["fsdaf"] = rmse(read(out("fsdaf")), ref)
    fusion.fuse_files(*inputs, out("before"), scale_ratio=case["ratio"], use_trust=False, **two)
    row["before"] = rmse(read(out("before")), ref)
    summary = fusion.fuse_files(*inputs, out("after"), uncertainty=out("uncertainty"), **two)
    after = read(out("after"))
    row["after"] = rmse(after, ref)
    row["trust"] = summary["trust"]
    row.update(trust.uncertainty_scores(after, read(out("uncertainty")), ref))
    row["spearman_ceiling"] = trust.uncertainty_scores(
        after, local_rms(np.abs(after - ref), CEILING_RADIUS), ref)["spearman"]
    fusion.fuse_files(*inputs, out("true_ratio"), scale_ratio=case["ratio"], **two)
    row["after_true_ratio"] = rmse(read(out("true_ratio")), ref)
    if case.get("shared"):
        tagged = {k: _with_metadata(case[k], case["coarse_pixel"], work) if case[k] else None
                  for k in ("coarse_t1", "coarse_t2", "coarse_t3")}
        fusion.fuse_files(case["fine_t1"], tagged["coarse_t1"], tagged["coarse_t2"],
                          out("metadata"), fine_t3=case["fine_t3"],
                          coarse_t3=tagged["coarse_t3"])
        row["after_metadata"] = rmse(read(out("metadata")), ref)
    return row


def _fmt(value, digits=4):
    return "–" if value is None else f"{value:.{digits}f}"


def table(results) -> str:
    lines = ["| case | F1 + (C2 - C1) | C2 alone | STARFM | FSDAF | fuse before | fuse after "
             "| after / min(trivial) | ratio used (SCALE_RATIO 0) | after, metadata ratio | "
             "after, true ratio | uncertainty: Spearman (per band) | ceiling | share below |",
             "|---" * 14 + "|"]
    for name, r in results:
        best = min(r["coarse_change"], r["coarse"])
        lines.append(
            f"| {name} | {_fmt(r['coarse_change'])} | {_fmt(r['coarse'])} | "
            f"{_fmt(r.get('starfm'))} | {_fmt(r.get('fsdaf'))} | {_fmt(r['before'])} | "
            f"**{_fmt(r['after'])}** | {r['after'] / best:.3f} | {r['ratio_used']} | "
            f"{_fmt(r.get('after_metadata'))} | {_fmt(r['after_true_ratio'])} | "
            f"{r['spearman']:.2f} ({r['spearman_per_band']:.2f}) | "
            f"{r['spearman_ceiling']:.2f} | {r['share_below']:.0%} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--only", nargs="*", default=None, help="case name prefixes")
    parser.add_argument("--no-classic", action="store_true", help="skip STARFM and FSDAF")
    args = parser.parse_args()
    import torch
    torch.set_num_threads(2)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for case in list(stress_cases(args.data, work)) + list(shared_cases(args.data)):
            if args.only and not any(case["name"].startswith(p) for p in args.only):
                continue
            with tempfile.TemporaryDirectory(dir=tmp) as case_dir:
                row = run_case(case, Path(case_dir), not args.no_classic)
            results.append((case["name"], row))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.with_suffix(".json").write_text(json.dumps(dict(results), indent=1))
            print(f"{case['name']:42s} before {row['before']:.4f} after {row['after']:.4f} "
                  f"trivial {min(row['coarse_change'], row['coarse']):.4f} ratio "
                  f"{row['ratio_used']} spearman {row['spearman']:.2f} below "
                  f"{row['share_below']:.0%}", flush=True)
    text = table(results)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
