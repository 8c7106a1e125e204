"""stfusion:resample_modis — bring raw MODIS onto the Landsat grid (numerics in core.resample)."""
import os

from qgis.core import (QgsProcessing, QgsProcessingException, QgsProcessingOutputNumber,
                       QgsProcessingOutputString, QgsProcessingParameterBoolean,
                       QgsProcessingParameterEnum, QgsProcessingParameterMultipleLayers,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination,
                       QgsProcessingParameterRasterLayer, QgsProcessingParameterString)

from .base import RgbRendering, StfusionAlgorithm, feedback_callbacks

METHOD_OPTIONS = (
    ("nearest", "Nearest neighbour (the paper's benchmark; keeps the coarse values)"),
    ("bilinear", "Bilinear (the paper's eq. 1)"),
    ("bicubic", "Bicubic (the paper's Table 1)"),
    ("cubicspline", "Cubic spline"),
    ("average", "Average"),
    ("lanczos", "Lanczos"),
)
DEFAULT_METHOD = 2
BAND_MAP_OPTIONS = (
    ("mod09", "MOD09 bands 3,4,1,2,6,7 -> Landsat blue, green, red, NIR, SWIR1, SWIR2"),
    ("same", "Same order (every band, as in the file)"),
    ("custom", "Custom list (CUSTOM_BANDS)"),
)
OUTPUT_TYPE_OPTIONS = (
    ("input", "Like the input (e.g. Int16 keeping scale 0.0001)"),
    ("float32", "Float32 reflectance (scale applied, NaN as nodata)"),
)

PARAMETER_HELP = {
    "INPUT": "any CRS, resolution and band count; or one HDF product file as downloaded (read "
             "as the product files below).",
    "PRODUCTS": "instead of the MODIS image, the HDF-EOS files of one product and one date as "
                "downloaded, one or several adjacent tiles (h/v), which are mosaicked: "
                "MOD09GA/MYD09GA, MOD09A1/MYD09A1, MCD43A4, MOD13Q1/MOD13A1 (and MYD), "
                "MOD11A1/MYD11A1, and VIIRS VNP09GA/VJ109GA and VNP43IA4/VJ143IA4 (HDF5). The "
                "product is recognised from its metadata; the bands are "
                "picked in the order of the reference's band names (blue, green, red, nir, "
                "swir1, swir2, ndvi, evi, lst, lst_night; unnamed bands get the product's "
                "default: the six reflectance bands, NDVI or day LST), with the product's scale "
                "and fill values; the date goes into the output's ACQUISITIONDATE metadata. A "
                "file of another product is refused with the list of its subdatasets.",
    "REFERENCE": "its grid (CRS, extent, pixel size, rows/columns) is the target; only read.",
    "METHOD": "nearest (the paper's benchmark), bilinear (its eq. 1), bicubic (its Table 1; "
              "default), cubic spline, average or Lanczos.",
    "BAND_MAP": "MOD09 file bands 3,4,1,2,6,7 as Landsat blue, green, red, NIR, SWIR1, SWIR2 "
                "(default; needs a 7-band MOD09 stack), the same order (every band of the "
                "file), or the custom list below.",
    "CUSTOM_BANDS": "comma-separated 1-based band numbers of the MODIS file in output order, "
                    "e.g. \"3,4,1,2,6,7\" (also accepts \"mod09\" or \"same\"). When filled in "
                    "it is used whatever the band mapping says, so scripts can give just "
                    "CUSTOM_BANDS=1,2,3.",
    "NODATA": "input value treated as no data. Empty: the file's nodata value, else the MODIS "
              "fill -28672.",
    "OUTPUT_TYPE": "like the input (default; e.g. Int16 with scale 0.0001 and the input's "
                   "nodata value), or Float32 reflectance with NaN as nodata.",
    "COREGISTER": "estimate the sub-pixel shift between MODIS and the fine image by maximising "
                  "their correlation (the fine image averaged over MODIS footprints with a "
                  "triangular point-spread function, searched up to ±1.5 MODIS pixels, "
                  "coarse-to-fine with a parabolic refinement) and correct the MODIS "
                  "georeference before warping. Default off. The reference bands are paired "
                  "with the mapped MODIS bands in order (e.g. Landsat blue..SWIR2).",
    "KEEP_QA": "products only. Off (default): pixels the product's QA marks bad become nodata "
               "(MOD09 state: cloudy, mixed, cloud shadow, average or high cirrus; QC_500m and "
               "MOD11 QC 'not produced'; MCD43 mandatory quality other than full inversion; "
               "MOD13 pixel reliability other than good or marginal).",
    "OUTPUT": "GeoTIFF on the reference grid; written to a temporary file and renamed on "
              "success, so nothing partial is left on error or cancel.",
    "SHIFT_X": "the correction applied along the MODIS columns, in MODIS pixels (positive = "
               "east); 0 without co-registration. The corrected MODIS pixel (col, row) lies "
               "where the file put (col + SHIFT_X, row + SHIFT_Y): a file whose georeference "
               "is off by (+0.3, -0.2) pixels gives SHIFT_X = -0.3, SHIFT_Y = +0.2.",
    "SHIFT_Y": "the correction applied along the MODIS rows, in MODIS pixels (positive = "
               "south, the row direction); 0 without co-registration.",
    "ACQUISITION_DATE": "the input's date (YYYY-MM-DD, also written as the ACQUISITIONDATE "
                        "metadata item); empty when the input tells none.",
}

PARAMETER_NAMES = {"modis": "INPUT", "reference": "REFERENCE", "nodata": "NODATA",
                   "method": "METHOD", "output_type": "OUTPUT_TYPE",
                   "coregister": "COREGISTER", "overlap": "INPUT and REFERENCE"}


class ResampleModis(StfusionAlgorithm):
    NAME = "resample_modis"
    DISPLAY_NAME = "Resample MODIS to the Landsat grid"
    GROUP = "preparation"
    SHORT_DESCRIPTION = ("Brings a MODIS image or HDF product, as downloaded, onto exactly the "
                         "grid of a Landsat image: step 1 of the fusion workflow.")
    DESCRIPTION = ("Reprojects with GDAL's warper (e.g. MOD09 500 m or 250 m in the sinusoidal "
                   "projection, int16 x 0.0001 with fill -28672). The output has the "
                   "reference's CRS, geotransform and size, nodata where MODIS has none, the "
                   "input's scale/offset and named bands, and can be used directly as a coarse "
                   "input of the fusion algorithms.")
    PARAMETER_HELP = PARAMETER_HELP
    TAGS = ("resample", "reproject", "warp", "co-registration", "MOD09", "MCD43A4", "MOD13",
            "HDF", "preparation")

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer(
            "INPUT", self.tr("MODIS image (any CRS and resolution; or one HDF product file)"),
            optional=True))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "PRODUCTS", self.tr("MODIS product files of one date (HDF, adjacent tiles)"),
            layerType=QgsProcessing.TypeFile, optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "REFERENCE", self.tr("Reference fine image (target grid)")))
        self.add_resampling_parameters()
        self.addParameter(QgsProcessingParameterRasterDestination(
            "OUTPUT", self.tr("MODIS on the fine grid")))
        self.addOutput(QgsProcessingOutputNumber(
            "SHIFT_X", self.tr("Applied shift x (MODIS pixels, positive = east)")))
        self.addOutput(QgsProcessingOutputNumber(
            "SHIFT_Y", self.tr("Applied shift y (MODIS pixels, positive = south)")))
        self.addOutput(QgsProcessingOutputString(
            "ACQUISITION_DATE", self.tr("Acquisition date (YYYY-MM-DD; empty if unknown)")))

    def add_resampling_parameters(self):
        """How to resample, band mapping and QA: shared with resample_modis_series."""
        self.addParameter(QgsProcessingParameterEnum(
            "METHOD", self.tr("Resampling method"),
            options=[self.tr(label) for _key, label in METHOD_OPTIONS],
            defaultValue=DEFAULT_METHOD))
        self.addParameter(QgsProcessingParameterEnum(
            "BAND_MAP", self.tr("Band mapping"),
            options=[self.tr(label) for _key, label in BAND_MAP_OPTIONS], defaultValue=0))
        self.addParameter(QgsProcessingParameterString(
            "CUSTOM_BANDS", self.tr("Custom bands (comma-separated 1-based MODIS band "
                                    "numbers; overrides the band mapping when filled in)"),
            defaultValue="", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "NODATA", self.tr("MODIS fill value (empty: the file's, else -28672)"),
            type=QgsProcessingParameterNumber.Double, optional=True))
        self.addParameter(QgsProcessingParameterEnum(
            "OUTPUT_TYPE", self.tr("Output data type"),
            options=[self.tr(label) for _key, label in OUTPUT_TYPE_OPTIONS], defaultValue=0))
        self.addParameter(QgsProcessingParameterBoolean(
            "COREGISTER", self.tr("Co-register MODIS to the fine image (sub-pixel shift "
                                  "maximising the correlation)"), defaultValue=False))
        self.addParameter(QgsProcessingParameterBoolean(
            "KEEP_QA", self.tr("Keep pixels the product's QA flags (products only)"),
            defaultValue=False))

    def checkParameterValues(self, parameters, context):
        from ..core.modis_products import is_product_file
        if is_product_file(parameters.get("INPUT")):
            # an HDF container is no raster layer: execute reads it as a product file
            parameters = dict(parameters, INPUT=None)
        return super().checkParameterValues(parameters, context)

    def product_files(self, parameters, context):
        """The HDF product files given as PRODUCTS, or as INPUT (one file)."""
        from ..core.modis_products import is_product_file
        files = [f for f in self.parameterAsFileList(parameters, "PRODUCTS", context) if f]
        value = parameters.get("INPUT")
        if is_product_file(value):
            files.insert(0, value)
        elif files and value not in (None, ""):
            raise QgsProcessingException(
                "Parameters INPUT and PRODUCTS: give either a MODIS raster as INPUT or the "
                "product files as PRODUCTS, not both.")
        return files

    def execute(self, parameters, context, feedback):
        from ..core import resample

        products = self.product_files(parameters, context)
        if not products and parameters.get("INPUT") in (None, ""):
            raise QgsProcessingException(
                "Parameter INPUT: no MODIS image given; choose a MODIS raster as INPUT or "
                "the product's HDF files as PRODUCTS.")
        modis_path = None if products else self.raster_source(parameters, "INPUT", context)
        reference_path = self.raster_source(parameters, "REFERENCE", context)
        bands_parameter, bands = self.band_spec(parameters, context, feedback)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        for name, path in (("INPUT", modis_path or ""), ("REFERENCE", reference_path),
                           *(("PRODUCTS", p) for p in products)):
            if os.path.abspath(output) == os.path.abspath(path.split("|")[0]):
                raise QgsProcessingException(
                    f"Parameter OUTPUT: it is the {name} file, which is never overwritten; "
                    "choose another output file.")

        options = self.resampling_options(parameters, context, feedback)
        try:
            if products:
                result = self.resample_products(products, reference_path, output, parameters,
                                                context, feedback, options)
            else:
                result = resample.resample_to_grid(
                    modis_path, reference_path, output, bands=bands,
                    nodata=self.nodata(parameters, context), **options)
        except resample.ResampleError as exc:
            raise self.resample_failure(exc, bands_parameter,
                                        "PRODUCTS" if products else "INPUT")
        self.report(result, feedback)
        RgbRendering.attach(context, output, result.band_names)
        return {"OUTPUT": output, "SHIFT_X": result.shift_x, "SHIFT_Y": result.shift_y,
                "ACQUISITION_DATE": result.acquisition_date}

    def band_spec(self, parameters, context, feedback):
        """(the parameter that chose the bands, the band spec for core.resample)."""
        band_key = BAND_MAP_OPTIONS[self.parameterAsEnum(parameters, "BAND_MAP", context)][0]
        custom = (self.parameterAsString(parameters, "CUSTOM_BANDS", context) or "").strip()
        if custom:
            if band_key != "custom" and parameters.get("BAND_MAP") not in (None, ""):
                feedback.pushInfo(f"CUSTOM_BANDS '{custom}' overrides BAND_MAP.")
            return "CUSTOM_BANDS", custom
        if band_key == "custom":
            raise QgsProcessingException(
                "Parameter CUSTOM_BANDS: BAND_MAP is 'custom' but no bands are given; enter "
                "comma-separated 1-based band numbers such as '3,4,1,2,6,7'.")
        return "BAND_MAP", band_key

    def nodata(self, parameters, context):
        if parameters.get("NODATA") in (None, ""):
            return None
        return self.parameterAsDouble(parameters, "NODATA", context)

    def resampling_options(self, parameters, context, feedback):
        """Method, output type, co-registration, progress and cancel for core.resample."""
        output_type = OUTPUT_TYPE_OPTIONS[self.parameterAsEnum(parameters, "OUTPUT_TYPE",
                                                               context)][0]
        progress, is_canceled = feedback_callbacks(feedback)
        return dict(method=METHOD_OPTIONS[self.parameterAsEnum(parameters, "METHOD",
                                                                context)][0],
                    coregister=self.parameterAsBool(parameters, "COREGISTER", context),
                    output_type=None if output_type == "input" else output_type,
                    progress=progress, is_canceled=is_canceled)

    @staticmethod
    def resample_failure(exc, bands_parameter: str, modis_parameter: str):
        """core.resample's error as a Processing error naming the parameter at fault."""
        name = bands_parameter if exc.parameter == "bands" else \
            modis_parameter if exc.parameter == "modis" else \
            PARAMETER_NAMES.get(exc.parameter, exc.parameter).replace("INPUT", modis_parameter)
        return QgsProcessingException(f"Parameter{'s' if ' and ' in name else ''} {name}: {exc}")

    @staticmethod
    def report(result, feedback):
        """core.resample's log lines, warnings as errors, and a summary line."""
        for line in result.log:
            if line.startswith("warning"):
                feedback.reportError(line, fatalError=False)
            else:
                feedback.pushInfo(line)
        feedback.pushInfo(
            f"MODIS bands {','.join(map(str, result.bands))} -> "
            f"{', '.join(result.band_names)}; method {result.method}; fill value "
            f"{result.nodata[0]}; {result.seconds:.1f} s")

    def resample_products(self, products, reference_path, output, parameters, context,
                          feedback, options):
        from ..core import modis_products
        if (self.parameterAsString(parameters, "CUSTOM_BANDS", context) or "").strip() or \
                parameters.get("BAND_MAP") not in (None, "", 0):
            feedback.pushWarning("PRODUCTS: the bands follow REFERENCE's band names; "
                                 "BAND_MAP and CUSTOM_BANDS are not used.")
        keep_qa = self.parameterAsBool(parameters, "KEEP_QA", context)
        result, source = modis_products.resample_products(products, reference_path, output,
                                                          keep_qa=keep_qa, **options)
        qa = "kept (KEEP_QA)" if keep_qa else \
            f"{source.qa_percent:.1f} % of the valid product pixels set to nodata"
        feedback.pushInfo(f"{source.product} of {source.date}, {source.tiles} tile(s) "
                          f"mosaicked; bands {', '.join(source.band_names)}; QA {qa} "
                          f"({'; '.join(source.qa_rules) or 'no QA field'})")
        return result


ALGORITHM = ResampleModis
