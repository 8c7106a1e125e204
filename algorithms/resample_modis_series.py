"""stfusion:resample_modis_series — every MODIS date of a series onto the Landsat grid in one
run (numerics in core.resample_series), ready to be fuse_series' coarse images."""
from qgis.core import (QgsProcessing, QgsProcessingOutputMultipleLayers,
                       QgsProcessingOutputNumber, QgsProcessingParameterFolderDestination,
                       QgsProcessingParameterMultipleLayers, QgsProcessingParameterRasterLayer,
                       QgsProcessingParameterString)

from .resample_modis import PARAMETER_HELP as SINGLE_DATE_HELP
from .resample_modis import ResampleModis

PARAMETER_HELP = {
    **{name: line for name, line in SINGLE_DATE_HELP.items()
       if name not in ("INPUT", "PRODUCTS", "OUTPUT", "SHIFT_X", "SHIFT_Y",
                       "ACQUISITION_DATE")},
    "INPUTS": "the MODIS images of the series as downloaded: one raster per date (any CRS and "
              "resolution, the date in its name, e.g. modis_2021-05-17.tif or A2021137, or in "
              "its ACQUISITIONDATE metadata), or HDF product files (the tiles of one date are "
              "mosaicked, as in resample_modis' PRODUCTS).",
    "PREFIX": "the output files are PREFIX_YYYY-MM-DD.tif.",
    "OUTPUT_FOLDER": "one GeoTIFF per date on the reference grid, named by its date; all "
                     "dates are published together when every one is done, so a failed or "
                     "cancelled run writes none.",
    "OUTPUT_LAYERS": "the resampled images, oldest first: the coarse images of fuse_series.",
    "DATES_WRITTEN": "how many dates were written.",
}


class ResampleModisSeries(ResampleModis):
    NAME = "resample_modis_series"
    DISPLAY_NAME = "Resample a MODIS series to the Landsat grid"
    SHORT_DESCRIPTION = ("Brings the MODIS images or HDF products of many dates, as "
                         "downloaded, onto the grid of a Landsat image in one run, one file "
                         "per date: the coarse images of fuse_series.")
    DESCRIPTION = ("Each date is resampled exactly as resample_modis does it (same methods, "
                   "band mapping, QA masking and scale-ratio metadata).")
    PARAMETER_HELP = PARAMETER_HELP
    TAGS = ResampleModis.TAGS + ("time series", "batch")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "INPUTS", self.tr("MODIS images or HDF product files, one date each (tiles of one "
                              "date are mosaicked)"), layerType=QgsProcessing.TypeFile))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "REFERENCE", self.tr("Reference fine image (target grid)")))
        self.add_resampling_parameters()
        self.addParameter(QgsProcessingParameterString(
            "PREFIX", self.tr("File name prefix"), defaultValue="modis"))
        self.addParameter(QgsProcessingParameterFolderDestination(
            "OUTPUT_FOLDER", self.tr("Output folder")))
        self.addOutput(QgsProcessingOutputMultipleLayers(
            "OUTPUT_LAYERS", self.tr("MODIS on the fine grid, one image per date")))
        self.addOutput(QgsProcessingOutputNumber("DATES_WRITTEN", self.tr("Dates written")))

    def checkParameterValues(self, parameters, context):
        # the base checks: no INPUT here for resample_modis to read as a product file
        return super(ResampleModis, self).checkParameterValues(parameters, context)

    def execute(self, parameters, context, feedback):
        from ..core import resample, resample_series
        inputs = [f for f in self.parameterAsFileList(parameters, "INPUTS", context) if f]
        reference_path = self.raster_source(parameters, "REFERENCE", context)
        bands_parameter, bands = self.band_spec(parameters, context, feedback)
        folder = self.parameterAsFileOutput(parameters, "OUTPUT_FOLDER", context)
        try:
            dates = resample_series.resample_series(
                inputs, reference_path, folder,
                prefix=self.parameterAsString(parameters, "PREFIX", context) or "modis",
                bands=bands, nodata=self.nodata(parameters, context),
                keep_qa=self.parameterAsBool(parameters, "KEEP_QA", context),
                **self.resampling_options(parameters, context, feedback))
        except resample.ResampleError as exc:
            raise self.resample_failure(exc, bands_parameter, "INPUTS")
        for item in dates:
            feedback.pushInfo(f"{item.date}: {item.output}")
            self.report(item.result, feedback)
        return {"OUTPUT_FOLDER": folder, "OUTPUT_LAYERS": [item.output for item in dates],
                "DATES_WRITTEN": len(dates)}


ALGORITHM = ResampleModisSeries
