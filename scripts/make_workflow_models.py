"""Write the workflow models the provider ships (processing_provider/models/*.model3).

Usage: python scripts/make_workflow_models.py   (QGIS with the plugin on the Python path)

Built with the Processing model API rather than edited by hand, so the files stay valid
models; open one in the Graphical Modeler to see or change it (then save it under another
name: the provider reloads these files when the plugin loads).
"""
import sys
from pathlib import Path

from qgis.core import (QgsApplication, QgsProcessing, QgsProcessingModelAlgorithm,
                       QgsProcessingModelChildAlgorithm, QgsProcessingModelChildParameterSource,
                       QgsProcessingModelOutput, QgsProcessingModelParameter,
                       QgsProcessingParameterMultipleLayers, QgsProcessingParameterRasterLayer)
from qgis.PyQt.QtCore import QPointF

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "processing_provider" / "models"
sys.path.insert(0, str(ROOT / "build" / "plugins"))
from stfusion.algorithms.base import GROUPS  # noqa: E402


def add_input(model, name, label, y, definition=QgsProcessingParameterRasterLayer, **options):
    """A model input ``name`` (by default a raster layer) drawn at height ``y``."""
    model.addModelParameter(definition(name, label, **options), QgsProcessingModelParameter(name))
    model.parameterComponent(name).setPosition(QPointF(120, y))


def add_child(model, child_id, algorithm, description, sources, position, outputs=None):
    """A child running ``algorithm``; ``sources``: parameter -> ('model', input name) or
    (child id, its output name); ``outputs``: child output -> model output label."""
    child = QgsProcessingModelChildAlgorithm(algorithm)
    child.setChildId(child_id)
    child.setDescription(description)
    child.setPosition(QPointF(*position))
    for parameter, (origin, name) in sources.items():
        source = (QgsProcessingModelChildParameterSource.fromModelParameter(name)
                  if origin == "model" else
                  QgsProcessingModelChildParameterSource.fromChildOutput(origin, name))
        child.addParameterSources(parameter, [source])
    model_outputs = {}
    for output_name, label in (outputs or {}).items():
        output = QgsProcessingModelOutput(label)
        output.setChildId(child_id)
        output.setChildOutputName(output_name)
        model_outputs[label] = output
    child.setModelOutputs(model_outputs)
    model.addChildAlgorithm(child)


def fuse_and_evaluate() -> QgsProcessingModelAlgorithm:
    """resample_modis (t1, t2) -> fuse -> evaluate against the real Landsat of t2."""
    model = QgsProcessingModelAlgorithm("Fuse and evaluate, from MODIS as downloaded",
                                        GROUPS["workflows"], "workflows")
    model.setName("fuse_and_evaluate")
    model.setHelpContent({"ALG_DESC": (
        "The whole workflow on one date: brings the MODIS images of t1 and t2 onto the grid "
        "of the Landsat image of t1 (stfusion:resample_modis), predicts the Landsat-like "
        "image of t2 (stfusion:fuse, shipped default model) and scores it against the real "
        "Landsat image of t2 with the un-fused MODIS image as baseline (stfusion:evaluate)."),
        "FINE_T1": "the Landsat image of t1.",
        "MODIS_T1": "the MODIS image of t1 as downloaded (any CRS; a 7-band MOD09 stack).",
        "MODIS_T2": "the MODIS image of t2, the date to predict, as downloaded.",
        "REFERENCE": "the real Landsat image of t2, to score the prediction."})
    add_input(model, "FINE_T1", "Landsat image at t1", 60)
    add_input(model, "MODIS_T1", "MODIS image at t1 (as downloaded)", 140)
    add_input(model, "MODIS_T2", "MODIS image at t2, the date to predict (as downloaded)", 220)
    add_input(model, "REFERENCE", "Real Landsat image at t2 (for the evaluation)", 300)
    for date, y in (("t1", 100), ("t2", 220)):
        add_child(model, f"resample_{date}", "stfusion:resample_modis",
                  f"MODIS {date} onto the Landsat grid",
                  {"INPUT": ("model", f"MODIS_{date.upper()}"),
                   "REFERENCE": ("model", "FINE_T1")}, (420, y))
    add_child(model, "fuse", "stfusion:fuse", "Fuse",
              {"FINE_T1": ("model", "FINE_T1"), "COARSE_T1": ("resample_t1", "OUTPUT"),
               "COARSE_T2": ("resample_t2", "OUTPUT")}, (700, 160),
              {"OUTPUT": "Fused image"})
    add_child(model, "evaluate", "stfusion:evaluate", "Evaluate",
              {"PREDICTION": ("fuse", "OUTPUT"), "REFERENCE": ("model", "REFERENCE"),
               "COARSE": ("resample_t2", "OUTPUT")}, (960, 240),
              {"REPORT": "Accuracy report"})
    return model


def fuse_series_from_downloads() -> QgsProcessingModelAlgorithm:
    """resample_modis_series (every MODIS date) -> fuse_series with the Landsat images."""
    model = QgsProcessingModelAlgorithm("Fuse a time series, from MODIS as downloaded",
                                        GROUPS["workflows"], "workflows")
    model.setName("fuse_series_from_downloads")
    model.setHelpContent({"ALG_DESC": (
        "The whole series workflow: brings every MODIS image (or the HDF product tiles of "
        "every date) onto the Landsat grid (stfusion:resample_modis_series), then predicts a "
        "Landsat-like image for every MODIS date without a Landsat image, from the nearest "
        "clear Landsat/MODIS pairs (stfusion:fuse_series, shipped default model)."),
        "LANDSAT": "the Landsat images of the series, on one grid, each date in its name or "
                   "ACQUISITIONDATE metadata (prepare_landsat writes it).",
        "LANDSAT_MASKS": "optional cloud/shadow masks of the Landsat images (as fuse_series' "
                         "FINE_MASKS).",
        "MODIS": "the MODIS images of the series as downloaded, including the Landsat dates: "
                 "rasters with the date in their names, or HDF product files.",
        "GRID": "one of the Landsat images: its grid is the series' grid."})
    add_input(model, "LANDSAT", "Landsat images (dates in names or metadata)", 60,
              QgsProcessingParameterMultipleLayers, layerType=QgsProcessing.TypeRaster)
    add_input(model, "LANDSAT_MASKS", "Cloud masks of the Landsat images (optional)", 140,
              QgsProcessingParameterMultipleLayers, layerType=QgsProcessing.TypeRaster,
              optional=True)
    add_input(model, "MODIS", "MODIS images or HDF products as downloaded, every date", 220,
              QgsProcessingParameterMultipleLayers, layerType=QgsProcessing.TypeFile)
    add_input(model, "GRID", "One of the Landsat images (the series' grid)", 300)
    add_child(model, "resample", "stfusion:resample_modis_series",
              "Every MODIS date onto the Landsat grid",
              {"INPUTS": ("model", "MODIS"), "REFERENCE": ("model", "GRID")}, (420, 260))
    add_child(model, "fuse_series", "stfusion:fuse_series", "Fuse the series",
              {"FINE": ("model", "LANDSAT"), "FINE_MASKS": ("model", "LANDSAT_MASKS"),
               "COARSE": ("resample", "OUTPUT_LAYERS")}, (700, 160),
              {"OUTPUT_FOLDER": "Fused series"})
    return model


def main() -> None:
    from stfusion.processing_provider.provider import StfusionProvider
    QgsApplication.processingRegistry().addProvider(StfusionProvider(with_models=False))
    MODELS.mkdir(parents=True, exist_ok=True)
    for model in (fuse_and_evaluate(), fuse_series_from_downloads()):
        path = MODELS / f"{model.name()}.model3"
        if not model.toFile(str(path)):
            raise SystemExit(f"could not write {path}")
        print(path)


if __name__ == "__main__":
    application = QgsApplication([], False)
    application.initQgis()
    main()
