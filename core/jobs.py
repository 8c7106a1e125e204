"""A whole fusion job from its parameter values (``core.parameters``): what the Processing
algorithm and the command line both run, so both give the same outputs.

``values`` maps parameter names to plain values: paths (None when absent), a CHOICE as its
option string, numbers, and SCHEDULER (empty = in process). ``workers`` > 0 starts a local
Dask cluster of that many processes instead (the command line's ``--workers``).
"""
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from . import atomic, cluster, report, tiling
from .parameters import Kind, Parameter
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
        from . import acquisition, fusion, raster, training_scenes
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


def planned_outputs(specs: Sequence[Parameter], values: Mapping[str, Any]
                    ) -> List[Tuple[str, str]]:
    """(parameter, file) of every file a run will write: outputs, and a report's sidecars."""
    files = []
    for spec in specs:
        path = values.get(spec.name)
        if not path or spec.kind not in (Kind.RASTER_OUTPUT, Kind.FILE_OUTPUT):
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
             if spec.kind in (Kind.RASTER_OUTPUT, Kind.FILE_OUTPUT) and values.get(spec.name)]
    inputs = [(spec.name, str(values[spec.name])) for spec in specs
              if spec.kind in (Kind.RASTER, Kind.FILE) and values.get(spec.name)]
    geotiffs = [spec.name for spec in specs if spec.kind is Kind.RASTER_OUTPUT]
    problem = atomic.outputs_problem(planned_outputs(specs, values), inputs, given, geotiffs)
    if problem:
        raise problem
