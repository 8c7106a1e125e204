"""The small base class under every stfusion algorithm, and the helpers they share.

Subclasses set ``NAME``, ``DISPLAY_NAME``, ``GROUP`` (a key of ``GROUPS``), their help as
data (``SHORT_DESCRIPTION``, ``DESCRIPTION``, ``PARAMETER_HELP``: one line per parameter or
output, by name) and ``TAGS``, and implement ``initAlgorithm`` and ``execute`` (not ``run``:
that name is QgsProcessingAlgorithm's own). The base builds the help page, the parameter
tooltips, the tags and the help URL from that data, so a new parameter needs one line in
``PARAMETER_HELP`` (a test checks that every parameter has one).
The base translates the numerics' errors (bad raster, missing torch, cancel, a full disk)
into ``QgsProcessingException``s that name the parameter and the fix. Before any work it
refuses outputs that would replace an input of the run or another output of it, or that
cannot be written (``output_problem``); a run's outputs are staged and published together
at its end (``core.atomic.run_outputs``), after a last cancel check; SIGTERM and SIGHUP
cancel the run (``cancel_on_signals``). Heavy modules (torch and
the models) are imported inside ``execute`` only, so the provider loads and lists its
algorithms on a QGIS without torch.
"""
import itertools
import os
import re
import signal
import threading
from contextlib import contextmanager
from typing import Callable, Dict, List, Optional, Tuple

from qgis.core import (QgsApplication, QgsProcessing, QgsProcessingAlgorithm,
                       QgsProcessingException, QgsProcessingLayerPostProcessorInterface,
                       QgsProcessingOutputLayerDefinition,
                       QgsProcessingParameterFile, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterFolderDestination,
                       QgsProcessingParameterMultipleLayers, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterDestination,
                       QgsProcessingParameterRasterLayer, QgsProcessingUtils, QgsProperty,
                       QgsMultiBandColorRenderer, QgsContrastEnhancement, QgsRasterLayer)
from qgis.PyQt.QtCore import QCoreApplication, QUrl
from qgis.PyQt.QtGui import QIcon

from ..core import acquisition, atomic, raster, report, torch_install
from ..core.errors import InputError
from ..core.parameters import FUSION_INPUTS, help_lines
from ..core.raster import RESAMPLE_HINT
from ..core.tiling import Canceled
from ..core.torch_check import TorchMissing, require_torch
from .parameters import as_advanced, processing_parameter

PLUGIN_DIR = os.path.dirname(os.path.dirname(__file__))
ICON_PATH = os.path.join(PLUGIN_DIR, "resources", "icon.svg")
README_PATH = os.path.join(PLUGIN_DIR, "README.md")
# Toolbox groups in workflow order: QGIS sorts groups by their name, hence the numbers
# ("workflows": the shipped models, processing_provider/models)
GROUPS = {"workflows": "0 · Workflows", "preparation": "1 · Preparation", "fusion": "2 · Fusion",
          "evaluation": "3 · Evaluation", "classic": "4 · Classic methods"}
COMMON_TAGS = ("stfusion", "spatiotemporal", "fusion", "Landsat", "MODIS", "remote sensing")
# the fusion inputs' labels and help lines: defined once, with the command line's
FUSION_INPUT_HELP = help_lines(FUSION_INPUTS)


class StfusionAlgorithm(QgsProcessingAlgorithm):
    NAME = ""
    DISPLAY_NAME = ""
    GROUP = ""
    SHORT_DESCRIPTION = ""  # one sentence: the Toolbox tooltip and the help's first line
    DESCRIPTION = ""  # optional paragraphs after it, one per line, never wrapped by hand
    PARAMETER_HELP: Dict[str, str] = {}  # parameter or output name -> its help line
    TAGS: Tuple[str, ...] = ()

    def name(self):
        return self.NAME

    def displayName(self):
        return self.tr(self.DISPLAY_NAME)

    def group(self):
        return self.tr(GROUPS[self.GROUP])

    def groupId(self):
        return self.GROUP

    def shortDescription(self):
        return self.tr(self.SHORT_DESCRIPTION)

    def tags(self):
        return [self.tr(tag) for tag in COMMON_TAGS + self.TAGS]

    def helpUrl(self):
        """This algorithm's entry in the README shipped with the plugin (no public home yet)."""
        return QUrl.fromLocalFile(README_PATH).toString() + "#" + help_anchor(self.NAME)

    def shortHelpString(self):
        """One paragraph per line (QGIS makes each line a paragraph): the short description,
        the description, then each parameter and output under the label the dialog shows."""
        lines = [self.shortDescription()]
        lines += [self.tr(line) for line in self.DESCRIPTION.splitlines() if line.strip()]
        for name, label in self.help_labels():
            lines.append(f"<b>{label}</b>: {self.tr(self.PARAMETER_HELP[name])}")
        return "\n".join(lines)

    def help_labels(self):
        """(name, label) of the parameters, then of the outputs that are not parameters,
        that have a help line."""
        parameters = [(d.name(), d.description()) for d in self.parameterDefinitions()]
        names = {name for name, _label in parameters}
        outputs = [(d.name(), d.description()) for d in self.outputDefinitions()
                   if d.name() not in names]
        return [(name, label) for name, label in parameters + outputs
                if name in self.PARAMETER_HELP]

    def addParameter(self, definition, createOutput=True):  # noqa: N802, N803 (QGIS API)
        """Every parameter gets its help line as the dialog's tooltip."""
        if definition.name() in self.PARAMETER_HELP:
            definition.setHelp(self.tr(self.PARAMETER_HELP[definition.name()]))
        return super().addParameter(definition, createOutput)

    def icon(self):
        return QIcon(ICON_PATH)

    def createInstance(self):
        return type(self)()

    def tr(self, text):
        return QCoreApplication.translate("stfusion", text)

    def processAlgorithm(self, parameters, context, feedback):
        problem = self.output_problem(parameters, context)
        if problem:
            raise QgsProcessingException(problem)
        raster.implausible_inputs_seen(clear=True)
        try:
            with atomic.run_outputs() as outputs, cancel_on_signals(feedback):
                results = self.execute(parameters, context, feedback)
                self.warn_implausible_values(parameters, context, feedback)
                if feedback.isCanceled():       # e.g. during the last tile
                    raise Canceled()
                outputs.commit()
            return results
        except Canceled:
            message = self.tr("Canceled; nothing was written (no output, report or sidecar).")
        except TorchMissing:
            message = torch_missing_advice()
        except (raster.RasterError, InputError) as exc:
            message = str(exc)
        except OSError as exc:
            message = self.write_failure(exc, parameters, context)
        # raised outside the handlers, so no traceback keeps the run's arrays and datasets
        raise QgsProcessingException(message)

    def execute(self, parameters, context, feedback) -> Dict:
        raise NotImplementedError

    def checkParameterValues(self, parameters, context):
        """QGIS's check of every value, except that raster files are checked by GDAL alone:
        QGIS would load them as layers, whose statistics GDAL then writes into .aux.xml
        files beside the inputs. Then the outputs (``output_problem``)."""
        for definition in self.parameterDefinitions():
            name = definition.name()
            if isinstance(definition, QgsProcessingParameterRasterLayer):
                problem = unreadable_file(parameters, name)
                if problem:
                    return False, problem
            if self.given_as_files(parameters, name):
                continue
            if not definition.checkValueIsAcceptable(parameters.get(name), context):
                return False, self.tr(f"Parameter {name}: the value "
                                      f"'{parameters.get(name)}' is not acceptable.")
        problem = self.repeated_input(parameters, context) or \
            self.output_problem(parameters, context)
        return (False, problem) if problem else (True, "")

    def validateInputCrs(self, parameters, context):
        """Inputs must share one grid, which ``check_same_grid`` tells precisely; QGIS's own
        check would load the inputs as layers (see ``checkParameterValues``)."""
        return True

    # -- what a run reads and writes -------------------------------------------------------
    def input_files(self, parameters, context) -> List[Tuple[str, str]]:
        """(parameter, file) for every file the run reads: raster layers, layer lists and
        files (e.g. MODEL)."""
        files = []
        for definition in self.parameterDefinitions():
            name = definition.name()
            if definition.isDestination() or parameters.get(name) in (None, ""):
                continue
            if isinstance(definition, (QgsProcessingParameterRasterLayer,
                                       QgsProcessingParameterMultipleLayers)):
                sources = self.layer_sources(parameters, name, context)
            elif isinstance(definition, QgsProcessingParameterFile):
                sources = [self.parameterAsFile(parameters, name, context)]
            else:
                continue
            files += [(name, path) for path in map(source_file, sources) if path]
        return files

    def planned_outputs(self, parameters, context) -> List[Tuple[str, str]]:
        """(parameter, file) for every file the run will write at a path the user chose:
        every destination parameter, and for a report its sidecars (temporary outputs,
        which Processing places in fresh folders, are left out)."""
        files = []
        for definition in self.destinationParameterDefinitions():
            path = destination_file(parameters.get(definition.name()), context)
            if not path:
                continue
            if is_report(definition):
                files += [(definition.name(), p) for p in
                          report.sidecar_paths(report.html_path(path))]
            else:
                files.append((definition.name(), path))
        return files

    def output_problem(self, parameters, context) -> str:
        """Why the outputs cannot be written as given ('' when they can): an output that is
        an input of the run (also through a link or another case), two outputs on one file,
        a raster output not named .tif, or a folder that cannot be written."""
        given = [(d.name(), destination_file(parameters.get(d.name()), context))
                 for d in self.destinationParameterDefinitions()]
        geotiffs = [d.name() for d in self.destinationParameterDefinitions()
                    if isinstance(d, QgsProcessingParameterRasterDestination)]
        folders = [d.name() for d in self.destinationParameterDefinitions()
                   if isinstance(d, QgsProcessingParameterFolderDestination)]
        problem = atomic.outputs_problem(self.planned_outputs(parameters, context),
                                         self.input_files(parameters, context),
                                         [(name, path) for name, path in given if path],
                                         geotiffs, folders)
        return self.tr(str(problem)) if problem else ""

    def write_failure(self, exc: OSError, parameters, context) -> str:
        """The message of an output that could not be written, naming its parameter."""
        path = getattr(exc, "path", None) or exc.filename or ""
        name = next((n for n, p in self.planned_outputs(parameters, context)
                     if path and written_as(str(path), p)), None)
        fix = "free disk space or choose another folder, then run it again."
        if name is None:
            return self.tr(f"Writing an output failed: {exc}; {fix}")
        return self.tr(f"Parameter {name}: {exc}; {fix}")

    def warn_implausible_values(self, parameters, context, feedback) -> None:
        seen = raster.implausible_inputs_seen()
        for name, path in self.input_files(parameters, context):
            if any(atomic.same_file(path, other) for other in seen):
                feedback.pushWarning(self.tr(
                    f"Parameter {name}: values of magnitude {raster.IMPLAUSIBLE_MAGNITUDE:g} "
                    "or more (an undeclared fill value such as 1e30?) were read as nodata; "
                    "those pixels are nodata in the output. Declare the file's nodata value "
                    "to silence this warning."))

    def repeated_input(self, parameters, context) -> str:
        """Why a fine input is also given as a coarse one ('' when none is): the dialogs
        preselect the same layer everywhere, and fusing an image with itself says nothing.
        (The same coarse image at t1 and t2 is allowed: it predicts the fine image of t1.)"""
        names = [spec.name for spec in FUSION_INPUTS]
        given = [name for name in names
                 if self.parameterDefinition(name) and parameters.get(name) not in (None, "")]
        sources = {name: source_file(self.layer_sources(parameters, name, context)[0])
                   for name in given}
        for fine, coarse in itertools.product(sources, sources):
            if fine.startswith("FINE") and coarse.startswith("COARSE") \
                    and atomic.same_file(sources[fine], sources[coarse]):
                return (f"Parameters {fine} and {coarse} are the same image "
                        f"({sources[fine]}); {coarse} must be the coarse (MODIS) image on the "
                        "fine grid, not the fine image.")
        return ""

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
        sources = self.layer_sources(parameters, name, context)
        if not sources:
            if required:
                raise QgsProcessingException(
                    f"Parameter {name}: no raster layer given; choose a raster layer or file.")
            return None
        path = sources[0]
        try:
            raster.raster_info(path)
        except raster.RasterError as exc:
            raise QgsProcessingException(f"Parameter {name}: {exc}")
        return path

    def given_as_files(self, parameters, name: str) -> bool:
        """Whether a raster layer (list) parameter is given as existing files."""
        if not isinstance(self.parameterDefinition(name), (
                QgsProcessingParameterRasterLayer, QgsProcessingParameterMultipleLayers)):
            return False
        value = parameters.get(name)
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        return bool(values) and all(isinstance(v, str) and os.path.isfile(source_file(v))
                                    for v in values)

    def layer_sources(self, parameters, name: str, context) -> List[str]:
        """GDAL sources of a raster layer (or layer list) parameter. Files are used as given,
        without making QGIS layers of them: a new layer computes statistics that GDAL then
        writes into an .aux.xml beside the input. Layers of the project must be GDAL's."""
        if self.given_as_files(parameters, name):
            value = parameters[name]
            return list(value) if isinstance(value, (list, tuple)) else [value]
        if isinstance(self.parameterDefinition(name), QgsProcessingParameterMultipleLayers):
            layers = self.parameterAsLayerList(parameters, name, context)
        else:
            layers = [self.parameterAsRasterLayer(parameters, name, context)]
        layers = [layer for layer in layers if layer is not None]
        for layer in layers:
            if layer.providerType() != "gdal":
                raise QgsProcessingException(
                    f"Parameter {name}: layer '{layer.name()}' is not a GDAL raster "
                    f"(provider '{layer.providerType()}'); save it as a GeoTIFF first.")
        return [layer.source() for layer in layers]

    def layer_paths(self, parameters, name: str, context, required: bool = True) -> List[str]:
        """The GDAL files of a layer-list parameter, each readable (an error when none is
        given and ``required``)."""
        paths = self.layer_sources(parameters, name, context)
        if required and not paths:
            raise QgsProcessingException(f"Parameter {name}: give at least one raster layer.")
        for path in paths:
            try:
                raster.raster_info(path)
            except raster.RasterError as exc:
                raise QgsProcessingException(f"Parameter {name}: {exc}")
        return paths

    def layer_name(self, parameters, name: str, context) -> str:
        """How reports name the image of parameter ``name``: its layer's name (a file's name
        without extension); for a temporary file (e.g. a step of a model), whose name would
        mean nothing, its acquisition date ('' when it has none)."""
        if parameters.get(name) in (None, ""):
            return ""
        path = source_file(self.layer_sources(parameters, name, context)[0])
        temporary = os.path.abspath(QgsProcessingUtils.tempFolder())
        if path.startswith(temporary + os.sep):
            return str(acquisition.acquisition_date(path) or "")
        if self.given_as_files(parameters, name):
            return os.path.splitext(os.path.basename(path))[0]
        return self.parameterAsRasterLayer(parameters, name, context).name()

    def add_fusion_inputs(self, second_pair: bool = True) -> None:
        """The FINE_T1, COARSE_T1, COARSE_T2 (and FINE_T3, COARSE_T3) layer parameters."""
        for spec in FUSION_INPUTS[:5 if second_pair else 3]:
            self.addParameter(processing_parameter(spec))

    def add_number_parameters(self, specs, advanced: bool = False) -> None:
        """Number parameters from (name, label, QgsProcessingParameterNumber type, default,
        minimum) tuples; ``advanced``: under the dialog's Advanced Parameters."""
        for name, label, kind, default, minimum in specs:
            parameter = QgsProcessingParameterNumber(name, self.tr(label), kind,
                                                     defaultValue=default, minValue=minimum)
            self.addParameter(as_advanced(parameter) if advanced else parameter)

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
        raster.require_same_grid(reference, others, hint)

    def check_band_counts(self, paths: Dict[str, str], expected: int, what: str) -> None:
        raster.require_band_counts(paths, expected, what)


def destination_file(value, context) -> str:
    """The file a destination parameter value names ('' for temporary outputs and
    non-file destinations such as memory layers or database URIs)."""
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        value = value.sink
    if isinstance(value, QgsProperty):
        value = value.valueAsString(context.expressionContext())
    if not isinstance(value, str):
        return ""
    value = value.strip()
    if not value or value == QgsProcessing.TEMPORARY_OUTPUT or \
            re.match(r"^[A-Za-z][A-Za-z0-9_]+:", value):
        return ""
    return os.path.abspath(value.split("|")[0])


def source_file(source: str) -> str:
    """The file behind a layer source: 'a.tif', 'a.gpkg|layername=x' or a GDAL subdataset
    such as 'HDF4_EOS:EOS_GRID:"a.hdf":grid:field' ('' for virtual or remote sources)."""
    quoted = re.match(r'^[A-Za-z0-9_]+:[^"]*"([^"]+)"', source)
    path = quoted.group(1) if quoted else source.split("|")[0]
    return "" if not path or path.startswith("/vsi") else os.path.abspath(path)


def is_report(definition) -> bool:
    return isinstance(definition, QgsProcessingParameterFileDestination) and \
        "htm" in definition.fileFilter().lower()


def written_as(path: str, target: str) -> bool:
    """Whether ``path`` is ``target`` or one of its temporary files."""
    return atomic.same_file(path, target) or (
        os.path.dirname(os.path.abspath(path)) == os.path.dirname(target)
        and os.path.basename(path).startswith("." + os.path.basename(target) + "."))


@contextmanager
def cancel_on_signals(feedback):
    """While running in the main thread (qgis_process, scripts): SIGTERM and SIGHUP cancel
    the run like the Cancel button, so it stops at the next check and removes what it has
    written. Other threads (the desktop's background tasks) cannot take signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = [n for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]

    def cancel(number, _frame):
        feedback.pushWarning(f"{signal.Signals(number).name} received: canceling the run.")
        feedback.cancel()

    previous = {n: signal.getsignal(getattr(signal, n)) for n in names}
    for n in names:
        signal.signal(getattr(signal, n), cancel)
    try:
        yield
    finally:
        for n, handler in previous.items():
            signal.signal(getattr(signal, n), signal.SIG_DFL if handler is None else handler)


def torch_missing_advice() -> str:
    """What to do when torch cannot be imported, for the Python QGIS really uses."""
    try:
        plan = torch_install.torch_plan(QgsApplication.qgisSettingsDirPath())
    except torch_install.InstallError as exc:
        return f"PyTorch is not installed for QGIS's Python, and {exc}"
    return QCoreApplication.translate("stfusion", (
        "PyTorch is not installed for QGIS's Python ({python}). In QGIS: Plugins ▸ stfusion ▸ "
        "Install PyTorch…, which installs it into a folder of your QGIS profile without "
        "touching the system. Without the desktop, run: {command}")).format(
        python=plan.python, command=plan.manual_command())


def help_anchor(name: str) -> str:
    """The README anchor of algorithm ``name`` (README.md's algorithm table sets it)."""
    return f"stfusion-{name}"


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
        return f"Parameter {name}: {reason}. Choose a raster file GDAL can read (a GeoTIFF)."
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


def name_output_layer(context, output_path: str, name: str) -> None:
    """The name the output layer gets in the project when Processing loads it."""
    if context.willLoadLayerOnCompletion(output_path):
        context.layerToLoadOnCompletionDetails(output_path).name = name


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
