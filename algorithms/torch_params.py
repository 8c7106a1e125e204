"""Parameters shared by the torch algorithms: DEVICE and ARCHITECTURE."""
from qgis.core import QgsProcessingException, QgsProcessingParameterEnum

DEVICE_OPTIONS = ("auto", "cpu", "cuda")


def device_parameter() -> QgsProcessingParameterEnum:
    return QgsProcessingParameterEnum(
        "DEVICE", "Device (auto = GPU when available)", options=list(DEVICE_OPTIONS),
        defaultValue=0)


def resolve_device(index: int) -> str:
    """'cpu' or 'cuda' for a DEVICE choice; a clear error when CUDA is asked for but absent."""
    import torch
    choice = DEVICE_OPTIONS[index]
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise QgsProcessingException(
            "Parameter DEVICE: CUDA was chosen but this PyTorch has no usable GPU; "
            "choose 'auto' or 'cpu', or install a CUDA build of PyTorch.")
    return choice


# "default" is the project's best model (core.models.DEFAULT_ARCHITECTURE); "paper" is the
# paper's 3x3-patch regression DCNN. Kept here, torch-free, so the dialogs load without torch.
ARCHITECTURE_OPTIONS = ("default", "paper")


def architecture_parameter(description: str) -> QgsProcessingParameterEnum:
    return QgsProcessingParameterEnum("ARCHITECTURE", description,
                                      options=list(ARCHITECTURE_OPTIONS), defaultValue=0)
