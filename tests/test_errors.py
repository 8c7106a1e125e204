"""The core's one bad-input error names its parameter."""
from stfusion.core.errors import InputError


def test_input_error_names_the_parameter():
    error = InputError("FINE_T1", "no pixel is valid; give an image with data.")
    assert str(error) == "Parameter FINE_T1: no pixel is valid; give an image with data."
    assert error.parameter == "FINE_T1"
    assert isinstance(error, ValueError)


def test_input_error_without_a_parameter_is_the_message():
    assert str(InputError(None, "inputs disagree")) == "inputs disagree"
