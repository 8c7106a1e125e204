"""Parameters shared by the torch algorithms: DEVICE and ARCHITECTURE (defined, torch-free, in
``core.parameters`` so the dialogs load without torch and the command line shares them)."""
from qgis.core import QgsProcessingParameterEnum

from ..core import parameters
from ..core.parameters import ARCHITECTURE_OPTIONS, DEVICE_OPTIONS  # noqa: F401 (re-exported)
from ..core.torch_check import device_for
from .parameters import processing_parameter


def device_parameter() -> QgsProcessingParameterEnum:
    return processing_parameter(parameters.DEVICE)


def resolve_device(index: int) -> str:
    """'cpu' or 'cuda' for a DEVICE choice; a clear error when CUDA is asked for but absent."""
    return device_for(DEVICE_OPTIONS[index])


def architecture_parameter(label: str) -> QgsProcessingParameterEnum:
    """ARCHITECTURE under ``label`` (its help line: the algorithm's ``PARAMETER_HELP``)."""
    return processing_parameter(parameters.architecture(label))
