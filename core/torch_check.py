"""Deferred torch import with an answer a user can act on when torch is missing."""
import sys

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
