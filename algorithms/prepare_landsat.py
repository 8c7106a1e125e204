"""stfusion:prepare_landsat — a Collection 2 Level-2 scene as delivered -> one stacked GeoTIFF
(numerics in core.landsat)."""
import os

from qgis.core import (QgsCoordinateReferenceSystem, QgsProcessingException,
                       QgsProcessingOutputNumber, QgsProcessingOutputString,
                       QgsProcessingParameterBoolean, QgsProcessingParameterEnum,
                       QgsProcessingParameterExtent, QgsProcessingParameterFile,
                       QgsProcessingParameterRasterDestination)

from ..core import landsat, raster
from .base import RgbRendering, StfusionAlgorithm, feedback_callbacks

MASK_OPTIONS = (
    ("dilated_cloud", "Dilated cloud (QA_PIXEL bit 1)"),
    ("cirrus", "Cirrus (QA_PIXEL bit 2; Landsat 8-9 only)"),
    ("cloud", "Cloud (QA_PIXEL bit 3)"),
    ("cloud_shadow", "Cloud shadow (QA_PIXEL bit 4)"),
    ("snow", "Snow (QA_PIXEL bit 5)"),
)

PARAMETER_HELP = {
    "INPUT": "the scene's folder, its *_MTL.txt or *_MTL.xml file, or its .tar archive (read "
             "in place, nothing is extracted). A Level-1 or Collection 1 product, missing bands "
             "or files of several scenes are refused with what was found.",
    "EXTENT": "optional; only this part of the scene is read and written (grown to whole "
              "pixels).",
    "MASK": "the QA_PIXEL conditions set to nodata (default: all); fill is always nodata.",
    "SATURATED": "also set to nodata the pixels saturated in one of the six bands (QA_RADSAT; "
                 "on TM/ETM+ also dropped pixels). Default on.",
    "OUTPUT": "the stacked GeoTIFF, written to a temporary file and renamed on success.",
    "MASKED_PERCENT": "the share of the scene's own pixels (not fill) set to nodata, in "
                      "percent.",
    "ACQUISITION_DATE": "the date, YYYY-MM-DD.",
}


class PrepareLandsat(StfusionAlgorithm):
    NAME = "prepare_landsat"
    DISPLAY_NAME = "Prepare a Landsat Collection 2 Level-2 scene"
    GROUP = "preparation"
    SHORT_DESCRIPTION = ("Turns a Landsat Collection 2 Level-2 scene, as downloaded from USGS, "
                         "into the fine image the fusion algorithms expect.")
    DESCRIPTION = ("One GeoTIFF with the bands blue, green, red, NIR, SWIR1, SWIR2 (Landsat 8-9 "
                   "OLI bands 2-7; Landsat 4-5 TM and 7 ETM+ bands 1-5 and 7), stored as the "
                   "product stores them (UInt16) with the product's reflectance scale and "
                   "offset (2.75e-5, -0.2) as GDAL scale/offset, 0 as nodata, and the "
                   "acquisition date in the metadata (ACQUISITIONDATE). Clouds and other "
                   "conditions flagged in QA_PIXEL, and pixels QA_RADSAT marks saturated in one "
                   "of the six bands, become nodata.")
    PARAMETER_HELP = PARAMETER_HELP
    TAGS = ("Landsat", "Collection 2", "Level-2", "surface reflectance", "QA_PIXEL", "cloud mask",
            "preparation")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterFile(
            "INPUT", self.tr("Landsat C2 L2 scene (folder, or the path of its *_MTL.txt / "
                             "*_MTL.xml file or .tar archive)"),
            # a folder parameter accepts file paths too; a file parameter refuses folders
            behavior=QgsProcessingParameterFile.Folder))
        self.addParameter(QgsProcessingParameterExtent(
            "EXTENT", self.tr("Extent (empty: the whole scene)"), optional=True))
        self.addParameter(QgsProcessingParameterEnum(
            "MASK", self.tr("QA_PIXEL conditions set to nodata"),
            options=[self.tr(label) for _key, label in MASK_OPTIONS], allowMultiple=True,
            defaultValue=list(range(len(MASK_OPTIONS)))))
        self.addParameter(QgsProcessingParameterBoolean(
            "SATURATED", self.tr("Mask saturated pixels (QA_RADSAT)"), defaultValue=True))
        self.addParameter(QgsProcessingParameterRasterDestination(
            "OUTPUT", self.tr("Stacked surface reflectance")))
        self.addOutput(QgsProcessingOutputNumber(
            "MASKED_PERCENT", self.tr("Masked share of the scene (%)")))
        self.addOutput(QgsProcessingOutputString(
            "ACQUISITION_DATE", self.tr("Acquisition date (YYYY-MM-DD)")))

    def execute(self, parameters, context, feedback):
        source = self.parameterAsFile(parameters, "INPUT", context)
        if not source:
            raise QgsProcessingException(
                "Parameter INPUT: no scene given; choose the scene's folder, *_MTL.txt file "
                "or .tar archive.")
        scene = landsat.open_scene(source)
        grid = raster.raster_info(scene.band_paths[0]).grid
        extent = None
        if parameters.get("EXTENT") not in (None, ""):
            crs = QgsCoordinateReferenceSystem.fromWkt(grid.crs_wkt)
            box = self.parameterAsExtent(parameters, "EXTENT", context, crs)
            extent = (box.xMinimum(), box.yMinimum(), box.xMaximum(), box.yMaximum())
        mask = [MASK_OPTIONS[i][0] for i in self.parameterAsEnums(parameters, "MASK", context)]
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        if os.path.abspath(output) in map(os.path.abspath, scene.band_paths):
            raise QgsProcessingException(
                "Parameter OUTPUT: it is a band of the INPUT scene, which is never "
                "overwritten; choose another output file.")
        feedback.pushInfo(f"{scene.product_id}: {scene.spacecraft}, acquired {scene.date}; "
                          f"bands {', '.join(map(str, scene.band_numbers))} -> "
                          f"{', '.join(landsat.BAND_NAMES)}")
        progress, is_canceled = feedback_callbacks(feedback)
        result = landsat.prepare_scene(scene, output, mask=mask,
                                       saturated=self.parameterAsBool(parameters, "SATURATED",
                                                                      context),
                                       extent=extent, progress=progress,
                                       is_canceled=is_canceled)
        causes = ", ".join(f"{name} {count}" for name, count in result.counts.items())
        feedback.pushInfo(f"{result.masked_percent:.2f} % of the scene's pixels masked "
                          f"({result.masked_pixels} of {result.pixels - result.fill_pixels}; "
                          f"pixels flagged: {causes})")
        RgbRendering.attach(context, output, landsat.BAND_NAMES)
        return {"OUTPUT": output, "MASKED_PERCENT": result.masked_percent,
                "ACQUISITION_DATE": scene.date}


ALGORITHM = PrepareLandsat
