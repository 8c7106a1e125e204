"""The small base class under every stfusion algorithm, and the helpers they share.

Subclasses set ``NAME``, ``DISPLAY_NAME``, ``GROUP``, ``HELP`` and implement
``initAlgorithm`` and ``execute`` (not ``run``: that name is QgsProcessingAlgorithm's own).
The base translates the numerics' errors (bad raster, missing torch, cancel) into
``QgsProcessingException``s that name the parameter and the fix. Heavy modules (torch and
the models) are imported inside ``execute`` only, so the provider loads and lists its
algorithms on a QGIS without torch.
"""
import os
from typing import Callable, Dict, Optional, Tuple

from qgis.core import (QgsProcessingAlgorithm, QgsProcessingException,
                       QgsProcessingLayerPostProcessorInterface,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterLayer,
                       QgsMultiBandColorRenderer, QgsContrastEnhancement, QgsRasterLayer)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..core import raster
from ..core.errors import InputError
from ..core.tiling import Canceled
from ..core.torch_check import TorchMissing, require_torch

ICON_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "icon.svg")
FUSION_INPUTS = (("FINE_T1", "Fine image at t1 (Landsat)", False),
                 ("COARSE_T1", "Coarse image at t1 (MODIS on the fine grid)", False),
                 ("COARSE_T2", "Coarse image at t2, the date to predict", False),
                 ("FINE_T3", "Fine image at t3 (optional second pair)", True),
                 ("COARSE_T3", "Coarse image at t3 (optional second pair)", True))
RESAMPLE_HINT = ("Bring the coarse image onto the fine grid first with "
                 "'stfusion:resample_modis' (REFERENCE = the fine image).")


class StfusionAlgorithm(QgsProcessingAlgorithm):
    NAME = ""
    DISPLAY_NAME = ""
    GROUP = ""
    HELP = ""

    def name(self):
        return self.NAME

    def displayName(self):
        return self.tr(self.DISPLAY_NAME)

    def group(self):
        return self.tr(self.GROUP)

    def groupId(self):
        return self.GROUP.lower().replace(" ", "_")

    def shortHelpString(self):
        return self.tr(self.HELP)

    def icon(self):
        return QIcon(ICON_PATH)

    def createInstance(self):
        return type(self)()

    def tr(self, text):
        return QCoreApplication.translate("stfusion", text)

    def processAlgorithm(self, parameters, context, feedback):
        try:
            return self.execute(parameters, context, feedback)
        except Canceled:
            raise QgsProcessingException("Canceled by the user; no output was written.")
        except TorchMissing as exc:
            raise QgsProcessingException(str(exc))
        except (raster.RasterError, InputError) as exc:
            raise QgsProcessingException(str(exc))

    def execute(self, parameters, context, feedback) -> Dict:
        raise NotImplementedError

    def checkParameterValues(self, parameters, context):
        for definition in self.parameterDefinitions():
            if isinstance(definition, QgsProcessingParameterRasterLayer):
                problem = unreadable_file(parameters, definition.name())
                if problem:
                    return False, problem
        return super().checkParameterValues(parameters, context)

    # -- shared helpers -------------------------------------------------------------
    def require_torch(self):
        """Import torch or fail with installation advice (raises TorchMissing)."""
        return require_torch()

    def raster_source(self, parameters, name: str, context, required: bool = True
                      ) -> Optional[str]:
        """File path of a raster layer parameter, readable by GDAL, or a clear error."""
        problem = unreadable_file(parameters, name)
        if problem:
            raise QgsProcessingException(problem)
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            if required:
                raise QgsProcessingException(
                    f"Parameter {name}: no raster layer given; choose a raster layer or file.")
            return None
        path = layer.source()
        if layer.providerType() != "gdal":
            raise QgsProcessingException(
                f"Parameter {name}: layer '{layer.name()}' is not a GDAL raster "
                f"(provider '{layer.providerType()}'); save it as a GeoTIFF first.")
        try:
            raster.raster_info(path)
        except raster.RasterError as exc:
            raise QgsProcessingException(f"Parameter {name}: {exc}")
        return path

    def add_fusion_inputs(self, second_pair: bool = True) -> None:
        """The FINE_T1, COARSE_T1, COARSE_T2 (and FINE_T3, COARSE_T3) layer parameters."""
        inputs = FUSION_INPUTS if second_pair else FUSION_INPUTS[:3]
        for name, label, optional in inputs:
            self.addParameter(QgsProcessingParameterRasterLayer(name, self.tr(label),
                                                                optional=optional))

    def add_number_parameters(self, specs) -> None:
        """Number parameters from (name, label, QgsProcessingParameterNumber type, default,
        minimum) tuples."""
        for name, label, kind, default, minimum in specs:
            self.addParameter(QgsProcessingParameterNumber(name, self.tr(label), kind,
                                                           defaultValue=default,
                                                           minValue=minimum))

    def fusion_inputs(self, parameters, context, optional=("FINE_T3", "COARSE_T3", "REFERENCE")
                      ) -> Dict[str, Optional[str]]:
        """Paths of FINE_T1, COARSE_T1, COARSE_T2 and the optional inputs that the algorithm
        has, checked: all on the grid of FINE_T1, same band count, FINE_T3 with COARSE_T3."""
        names = [n for n in ("FINE_T1", "COARSE_T1", "COARSE_T2") + tuple(optional)
                 if self.parameterDefinition(n) is not None]
        paths = {n: self.raster_source(parameters, n, context, required=n not in optional)
                 for n in names}
        if (paths.get("FINE_T3") is None) != (paths.get("COARSE_T3") is None):
            raise QgsProcessingException(
                "Parameters FINE_T3 and COARSE_T3 go together: give both (a second pair) "
                "or neither.")
        others = {n: p for n, p in paths.items() if n != "FINE_T1"}
        self.check_same_grid(("FINE_T1", paths["FINE_T1"]), others)
        band_count = raster.raster_info(paths["FINE_T1"]).band_count
        self.check_band_counts(others, band_count, "FINE_T1")
        return paths

    def check_same_grid(self, reference: Tuple[str, str], others: Dict[str, str],
                        hint: str = RESAMPLE_HINT) -> None:
        """Fail unless every raster in ``others`` (name -> path) is on the reference grid."""
        reference_name, reference_path = reference
        grid = raster.raster_info(reference_path).grid
        for name, path in others.items():
            if path is None:
                continue
            problem = grid.mismatch(raster.raster_info(path).grid)
            if problem:
                raise QgsProcessingException(
                    f"Parameter {name} is not on the grid of {reference_name}: {problem}. "
                    + hint)

    def check_band_counts(self, paths: Dict[str, str], expected: int, what: str) -> None:
        for name, path in paths.items():
            if path is None:
                continue
            count = raster.raster_info(path).band_count
            if count != expected:
                raise QgsProcessingException(
                    f"Parameter {name} has {count} bands but {what} has {expected}; "
                    "give images with the same bands in the same order.")


def unreadable_file(parameters, name: str) -> str:
    """Why the file given as parameter ``name`` cannot be read ('' when it can, or when the
    value is not a file path): GDAL's reason rather than Processing's 'not found'."""
    value = parameters.get(name)
    if not isinstance(value, str) or not os.path.isfile(value):
        return ""
    try:
        raster.raster_info(value)
    except raster.RasterError as exc:
        reason = str(exc).rstrip(".")
        return (f"Parameter {name}: {reason}. Choose a raster file GDAL can read "
                "(e.g. a GeoTIFF or an HDF subdataset).")
    return ""


def odd_window(window: int, feedback) -> int:
    """The WINDOW parameter made odd (one more pixel, with a warning) when it is even."""
    if window % 2 == 0:
        window += 1
        feedback.pushWarning(f"WINDOW must be odd; using {window} pixels.")
    return window


def feedback_callbacks(feedback) -> Tuple[Callable[[float], None], Callable[[], bool]]:
    """(progress, is_canceled) callables for the core numerics, from a Processing feedback."""
    def progress(fraction: float) -> None:
        feedback.setProgress(100.0 * fraction)

    return progress, feedback.isCanceled


class RgbRendering(QgsProcessingLayerPostProcessorInterface):
    """Shows a loaded multi-band reflectance raster as natural colour (or false colour)."""

    _keep_alive = []

    def __init__(self, band_names):
        super().__init__()
        self.band_names = [name.lower() for name in band_names]

    @classmethod
    def attach(cls, context, output_path: str, band_names) -> None:
        if not context.willLoadLayerOnCompletion(output_path):
            return
        processor = cls(band_names)
        cls._keep_alive.append(processor)
        context.layerToLoadOnCompletionDetails(output_path).setPostProcessor(processor)

    def postProcessLayer(self, layer, context, feedback):
        if isinstance(layer, QgsRasterLayer) and layer.bandCount() >= 3:
            apply_rgb_renderer(layer, self.band_names)


def rgb_bands(band_names) -> Tuple[int, int, int]:
    """1-based (red, green, blue) band numbers: natural colour when the bands are named."""
    names = [name.lower() for name in band_names]
    if all(n in names for n in ("red", "green", "blue")):
        return tuple(names.index(n) + 1 for n in ("red", "green", "blue"))
    if all(n in names for n in ("nir", "red", "green")):
        return tuple(names.index(n) + 1 for n in ("nir", "red", "green"))
    return 3, 2, 1


def apply_rgb_renderer(layer: QgsRasterLayer, band_names) -> None:
    red, green, blue = rgb_bands(band_names)
    renderer = QgsMultiBandColorRenderer(layer.dataProvider(), red, green, blue)
    for setter, band in ((renderer.setRedContrastEnhancement, red),
                         (renderer.setGreenContrastEnhancement, green),
                         (renderer.setBlueContrastEnhancement, blue)):
        enhancement = QgsContrastEnhancement(layer.dataProvider().dataType(band))
        enhancement.setContrastEnhancementAlgorithm(
            QgsContrastEnhancement.StretchToMinimumMaximum, True)
        stats = layer.dataProvider().cumulativeCut(band, 0.02, 0.98, layer.extent(), 250000)
        enhancement.setMinimumValue(stats[0])
        enhancement.setMaximumValue(stats[1])
        setter(enhancement)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
