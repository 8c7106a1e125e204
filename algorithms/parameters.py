"""Processing parameters built from the core's one parameter definition (``core.parameters``),
the same one the command line (``stfusion.cli``) uses."""
from qgis.core import (QgsProcessing, QgsProcessingParameterDefinition,
                       QgsProcessingParameterEnum, QgsProcessingParameterFile,
                       QgsProcessingParameterFileDestination,
                       QgsProcessingParameterFolderDestination,
                       QgsProcessingParameterMultipleLayers, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterDestination,
                       QgsProcessingParameterRasterLayer, QgsProcessingParameterString)
from qgis.PyQt.QtCore import QCoreApplication

from ..core.parameters import Kind, Parameter


def _tr(text: str) -> str:
    return QCoreApplication.translate("stfusion", text)


def _number(spec: Parameter, label: str, number_type) -> QgsProcessingParameterNumber:
    limits = {}
    if spec.minimum is not None:
        limits["minValue"] = spec.minimum
    if spec.maximum is not None:
        limits["maxValue"] = spec.maximum
    return QgsProcessingParameterNumber(spec.name, label, number_type, defaultValue=spec.default,
                                        optional=spec.optional, **limits)


_BUILDERS = {
    Kind.RASTER: lambda spec, label: QgsProcessingParameterRasterLayer(
        spec.name, label, optional=spec.optional),
    Kind.RASTER_LIST: lambda spec, label: QgsProcessingParameterMultipleLayers(
        spec.name, label, QgsProcessing.TypeRaster, optional=spec.optional),
    Kind.FILE: lambda spec, label: QgsProcessingParameterFile(
        spec.name, label, extension=spec.extension, optional=spec.optional),
    Kind.CHOICE: lambda spec, label: QgsProcessingParameterEnum(
        spec.name, label, options=[_tr(option) for option in spec.options],
        defaultValue=spec.default, optional=spec.optional),
    Kind.INTEGER: lambda spec, label: _number(spec, label, QgsProcessingParameterNumber.Integer),
    Kind.NUMBER: lambda spec, label: _number(spec, label, QgsProcessingParameterNumber.Double),
    Kind.TEXT: lambda spec, label: QgsProcessingParameterString(
        spec.name, label, defaultValue=spec.default, optional=spec.optional),
    Kind.RASTER_OUTPUT: lambda spec, label: QgsProcessingParameterRasterDestination(
        spec.name, label, optional=spec.optional, createByDefault=spec.create_by_default),
    Kind.FILE_OUTPUT: lambda spec, label: QgsProcessingParameterFileDestination(
        spec.name, label, fileFilter=_tr(f"{spec.extension.upper()} files (*.{spec.extension})"),
        optional=spec.optional, createByDefault=spec.create_by_default),
    Kind.FOLDER_OUTPUT: lambda spec, label: QgsProcessingParameterFolderDestination(
        spec.name, label, optional=spec.optional),
}


def processing_parameter(spec: Parameter) -> QgsProcessingParameterDefinition:
    """The Processing parameter of ``spec``, its label translated (its help line comes
    through the algorithm's ``PARAMETER_HELP``, ``parameters.help_lines``)."""
    parameter = _BUILDERS[spec.kind](spec, _tr(spec.label))
    return as_advanced(parameter) if spec.advanced else parameter


def as_advanced(parameter: QgsProcessingParameterDefinition
                ) -> QgsProcessingParameterDefinition:
    """``parameter``, shown under the dialog's Advanced Parameters."""
    parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return parameter
