"""Deferred torch import with an answer a user can act on when torch is missing."""
import sys

from .errors import InputError

INSTALL_HINT = (
    "PyTorch is not installed in the Python that QGIS uses ({python}). Install the CPU "
    "build for that Python, e.g. '{python} -m pip install torch' (on Linux, with the "
    "--index-url https://download.pytorch.org/whl/cpu option for the small CPU build; on "
    "Windows run it from the OSGeo4W Shell), then restart QGIS."
)


class TorchMissing(ImportError):
    """torch cannot be imported; the message says how to install it."""


def require_torch():
    """Return the torch module or raise TorchMissing with installation advice."""
    try:
        import torch
    except ImportError as exc:
        raise TorchMissing(INSTALL_HINT.format(python=sys.executable)) from exc
    return torch


def device_for(choice: str) -> str:
    """'cpu' or 'cuda' for a DEVICE choice ('auto', 'cpu' or 'cuda'); InputError when CUDA is
    asked for but absent."""
    torch = require_torch()
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise InputError("DEVICE", "CUDA was chosen but this PyTorch has no usable GPU; "
                         "choose 'auto' or 'cpu', or install a CUDA build of PyTorch.")
    return choice
