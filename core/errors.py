"""The one error type the core raises for bad input, naming the parameter it concerns.

Algorithms map it (``algorithms.base.StfusionAlgorithm.processAlgorithm``) to a
``QgsProcessingException`` "Parameter NAME: message"; the command line prints it the same way.
"""
from typing import Optional


class InputError(ValueError):
    """Bad input found by the core numerics.

    ``parameter`` is the Processing parameter name it concerns (e.g. ``"FINE_T1"``), or None
    when no single parameter is to blame; ``message`` says what is wrong and how to fix it.
    """

    def __init__(self, parameter: Optional[str], message: str):
        super().__init__(message)
        self.parameter = parameter
        self.message = message

    def __str__(self) -> str:
        if self.parameter:
            return f"Parameter {self.parameter}: {self.message}"
        return self.message
