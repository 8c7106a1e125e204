"""Whole jobs from their parameter values (``core.parameters``): fuse and series, what the
Processing algorithms and the command line both run, so both give the same outputs.

``values`` maps parameter names to plain values: paths (None when absent), a CHOICE as its
option string, numbers, and SCHEDULER (empty = in process). ``workers`` > 0 starts a local
Dask cluster of that many processes instead (the command line's ``--workers``).
"""
import os
import re
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from . import acquisition, atomic, cluster, raster, report, tiling
from .errors import InputError
from .parameters import FINE_DATE_OPTIONS, Kind, Parameter
from .torch_check import device_for

FUSION_PATHS = ("FINE_T1", "COARSE_T1", "COARSE_T2", "FINE_T3", "COARSE_T3", "REFERENCE")


def run_fuse(values: Mapping[str, Any], workers: int = 0,
             progress: Callable[[float], None] = tiling.no_progress,
             is_canceled: Callable[[], bool] = tiling.never_canceled,
             log: Callable[[str], None] = lambda _message: None) -> Dict[str, Any]:
    """Fuse (``fusion.fuse_files``, with UNCERTAINTY when given), then score against
    REFERENCE and write REPORT when given. Returns the results by output name (OUTPUT,
    UNCERTAINTY, REPORT, RMSE, SSIM, ERGAS, SAM)."""
    paths = {name: values.get(name) or None for name in FUSION_PATHS}
    model_path = values.get("MODEL") or None
    output = values["OUTPUT"]
    started = time.time()
    with cluster.tile_map(values.get("SCHEDULER") or "", workers, log) as tile_map:
        from . import fusion     # torch: after a wrong scheduler address failed fast
        summary = fusion.fuse_files(
            paths["FINE_T1"], paths["COARSE_T1"], paths["COARSE_T2"], output,
            fine_t3=paths["FINE_T3"], coarse_t3=paths["COARSE_T3"], model_path=model_path,
            architecture=None if model_path else values.get("ARCHITECTURE", "default"),
            adapt_epochs=int(values.get("ADAPT") or 0),
            device=device_for(values.get("DEVICE") or "auto"),
            tile_size=int(values.get("TILE_SIZE") or fusion.FUSE_TILE),
            scale_ratio=float(values.get("SCALE_RATIO") or 0) or None,
            progress=progress, is_canceled=is_canceled, log=log,
            uncertainty=values.get("UNCERTAINTY") or None, tile_map=tile_map)
    seconds = time.time() - started
    log(f"Fused in {seconds:.1f} s: {output}")
    results = {"OUTPUT": output}
    if values.get("UNCERTAINTY"):
        results["UNCERTAINTY"] = values["UNCERTAINTY"]
    results.update(_evaluate_and_report(values, paths, output, summary, seconds, log))
    return results


def _evaluate_and_report(values: Mapping[str, Any], paths: Dict[str, Optional[str]],
                         output: str, summary: Dict, seconds: float,
                         log: Callable[[str], None]) -> Dict[str, Any]:
    results = {}
    evaluation = None
    if paths["REFERENCE"]:
        from . import metrics
        log("Scoring against REFERENCE")
        evaluation = metrics.evaluate_files(output, paths["REFERENCE"],
                                            coarse=paths["COARSE_T2"])
        results.update({key: evaluation.mean[key.lower()]
                        for key in ("RMSE", "SSIM", "ERGAS", "SAM")})
    report_path = values.get("REPORT") or None
    if report_path:
        from . import fusion, training_scenes
        model_path = values.get("MODEL") or None
        shipped = None if values.get("ARCHITECTURE") == "paper" else fusion.default_model_path()
        trained = model_path or shipped  # the paper DCNN trains on these very inputs
        scene = training_scenes.scene_of(trained, paths["FINE_T1"]) if trained else None
        run = {"inputs": {n: p for n, p in paths.items() if p}, "output": output,
               "band_names": raster.raster_info(paths["FINE_T1"]).band_names,
               "model": summary, "seconds": round(seconds, 2),
               "trained_on_this_scene": scene.describe() if scene else None}
        if values.get("UNCERTAINTY"):
            from . import trust
            run["uncertainty"] = trust.uncertainty_summary(output, values["UNCERTAINTY"],
                                                           paths["REFERENCE"])
        results["REPORT"] = report.write_fusion_report(
            report.html_path(report_path), run, evaluation,
            title=acquisition.titled("stfusion fuse", paths["COARSE_T2"])).html
    return results


_OUTPUT_KINDS = (Kind.RASTER_OUTPUT, Kind.FILE_OUTPUT, Kind.FOLDER_OUTPUT)


def planned_outputs(specs: Sequence[Parameter], values: Mapping[str, Any]
                    ) -> List[Tuple[str, str]]:
    """(parameter, file) of every output the run writes where the user said: outputs (a
    folder for a folder), and a report's sidecars."""
    files = []
    for spec in specs:
        path = values.get(spec.name)
        if not path or spec.kind not in _OUTPUT_KINDS:
            continue
        if spec.extension == "html":
            files += [(spec.name, p) for p in report.sidecar_paths(report.html_path(path))]
        else:
            files.append((spec.name, path))
    return files


def check_outputs(specs: Sequence[Parameter], values: Mapping[str, Any]) -> None:
    """InputError unless the outputs can be written as given (``atomic.outputs_problem``,
    the rules of the Processing algorithms)."""
    given = [(spec.name, str(values[spec.name])) for spec in specs
             if spec.kind in _OUTPUT_KINDS and values.get(spec.name)]
    inputs = [(spec.name, str(path)) for spec in specs
              if spec.kind in (Kind.RASTER, Kind.FILE, Kind.RASTER_LIST)
              for path in _paths(values.get(spec.name))]
    problem = atomic.outputs_problem(
        planned_outputs(specs, values), inputs, given,
        geotiffs=[spec.name for spec in specs if spec.kind is Kind.RASTER_OUTPUT],
        folders=[spec.name for spec in specs if spec.kind is Kind.FOLDER_OUTPUT])
    if problem:
        raise problem


def _paths(value) -> List:
    """The paths of a parameter value: none, one, or a list."""
    if not value:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def run_series(values: Mapping[str, Any], workers: int = 0,
               progress: Callable[[float], None] = tiling.no_progress,
               is_canceled: Callable[[], bool] = tiling.never_canceled,
               log: Callable[[str], None] = lambda _message: None,
               warn: Optional[Callable[[str], None]] = None):
    """A fused series (``series.run_series``) with its VRT stack, sources table and report.
    Returns (results by output name, the ``series.SeriesResult``). ``warn``: the dates
    left out and why (default ``log``). A cancel raises ``tiling.Canceled`` after the
    dates finished so far, each complete."""
    from . import fusion, series, series_outputs
    fine, coarse, masks = (list(values.get(name) or []) for name in
                           ("FINE", "COARSE", "FINE_MASKS"))
    for name, paths in (("FINE", fine), ("COARSE", coarse)):
        if not paths:
            raise InputError(name, "give at least one raster.")
    info = _check_series_grid(fine, coarse, masks)
    plan = _series_plan(values, fine, coarse, masks)
    for date, why in plan.skipped:
        (warn or log)(f"{date}: left out, {why}")
    if not plan.entries:
        raise InputError("TARGET_DATES", "no date can be predicted (see the warnings): give "
                                         "coarse images of the dates to predict and pairs "
                                         "within MAX_GAP_DAYS.")
    folder = values["OUTPUT_FOLDER"]
    prefix = values.get("PREFIX") or "fused"
    if not re.fullmatch(r"[\w.-]+", prefix):
        raise InputError("PREFIX", f"'{prefix}' must be a plain file name part (letters, "
                                   "digits, '_', '-', '.').")
    atomic.require_inputs_spared([acquisition.dated_path(folder, prefix, entry.date)
                                  for entry in plan.entries], fine + coarse + masks)
    log(f"{len(plan.entries)} date(s) from {len(plan.pairs)} pair(s) into {folder}")
    settings = series.SeriesSettings(
        model_path=values.get("MODEL") or None,
        device=device_for(values.get("DEVICE") or "auto"),
        tile_size=int(values.get("TILE_SIZE") or fusion.FUSE_TILE),
        scale_ratio=float(values.get("SCALE_RATIO") or 0) or None)
    with cluster.tile_map(values.get("SCHEDULER") or "", workers, log) as tile_map:
        result = series.run_series(plan, info, settings, folder, prefix, progress,
                                   is_canceled, log, tile_map)
    sources = values.get("SOURCES") or os.path.join(folder, f"{prefix}_sources.csv")
    report_path = values.get("REPORT") or os.path.join(folder, f"{prefix}_report.html")
    stack = series_outputs.write_stack(os.path.join(folder, f"{prefix}_series.vrt"),
                                       result.outputs, info)
    series_outputs.write_sources(sources, result)
    series_outputs.write_series_report(report_path, result, info)
    return {"OUTPUT_FOLDER": folder, "STACK": stack, "SOURCES": sources,
            "REPORT": report_path,
            "OUTPUT_LAYERS": [result.outputs[d] for d in sorted(result.outputs)],
            "DATES_WRITTEN": len(result.written), "DATES_KEPT": len(result.reused)}, result


def _check_series_grid(fine: List[str], coarse: List[str], masks: List[str]):
    """FINE[0]'s info, after checking every image against its grid and band count."""
    info = raster.raster_info(fine[0])

    def named(parameter, paths):
        return {f"{parameter} ({os.path.basename(p)})": p for p in paths}

    raster.require_same_grid(("FINE", fine[0]), {**named("FINE", fine[1:]),
                                                 **named("COARSE", coarse),
                                                 **named("FINE_MASKS", masks)})
    raster.require_band_counts({**named("FINE", fine), **named("COARSE", coarse)},
                               info.band_count, "the first FINE image")
    return info


def _series_plan(values: Mapping[str, Any], fine: List[str], coarse: List[str],
                 masks: List[str]):
    """The series plan: the images' dates, the pairs and each date's candidates."""
    from . import series
    table_path = values.get("DATES") or None
    table = acquisition.read_dates_table(table_path) if table_path else None
    fine_images = [series.Image(p, d) for p, d in
                   zip(fine, acquisition.image_dates(fine, "FINE", table))]
    coarse_images = [series.Image(p, d) for p, d in
                     zip(coarse, acquisition.image_dates(coarse, "COARSE", table))]
    mask_dates = acquisition.image_dates(masks, "FINE_MASKS", table)
    fine_dates = {image.date for image in fine_images}
    for path, date in zip(masks, mask_dates):
        if date not in fine_dates:
            raise InputError("FINE_MASKS", f"'{path}' is dated {date}, and no FINE image has "
                                           "that date; give one mask per fine image, named "
                                           "with its date.")
    return series.make_plan(
        fine_images, coarse_images, dict(zip(mask_dates, masks)),
        targets=acquisition.parse_target_dates(values.get("TARGET_DATES") or ""),
        max_gap_days=int(values.get("MAX_GAP_DAYS") or series.DEFAULT_MAX_GAP_DAYS),
        period_days=int(values.get("COARSE_PERIOD_DAYS") or 1),
        fine_dates=FINE_DATE_OPTIONS.index(values.get("INCLUDE_FINE_DATES")
                                           or FINE_DATE_OPTIONS[0]))

