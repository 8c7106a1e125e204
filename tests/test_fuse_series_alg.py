"""stfusion:fuse_series through QGIS Processing: outputs, temporal layers, bad input."""
import csv
import os

import pytest
from qgis.core import (QgsProcessingException, QgsProject, QgsRasterLayer,
                       QgsRasterLayerTemporalProperties)


def parameters(series, tmp_path, **overrides):
    values = {"FINE": list(series.fine.values()), "COARSE": list(series.coarse.values()),
              "FINE_MASKS": list(series.masks.values()), "OUTPUT_FOLDER": str(tmp_path / "out")}
    values.update(overrides)
    return values


def test_series_loads_as_a_temporal_group(stfusion_provider, sample_series, tmp_path):
    import processing
    project = QgsProject.instance()
    # 05-25 has a clear fine image (copied), 05-27 is fused from the 05-25 pair
    results = processing.runAndLoadResults("stfusion:fuse_series", parameters(
        sample_series, tmp_path, TARGET_DATES="2021-05-25/2021-05-27/2", MAX_GAP_DAYS=3,
        INCLUDE_FINE_DATES=1, PREFIX="season"))
    folder = tmp_path / "out"
    assert sorted(os.listdir(folder)) == [
        "season_2021-05-25.tif", "season_2021-05-27.tif", "season_report.html",
        "season_series.json", "season_series.vrt", "season_sources.csv"]
    assert results["OUTPUT_LAYERS"] == [str(folder / f"season_2021-05-{d}.tif")
                                        for d in (25, 27)]
    assert results["DATES_WRITTEN"] == 2 and results["DATES_KEPT"] == 0
    assert QgsRasterLayer(results["STACK"]).bandCount() == 12
    with open(results["SOURCES"]) as stream:
        rows = list(csv.DictReader(stream))
    assert [(r["date"], r["pairs"], r["share"]) for r in rows] == [
        ("2021-05-25", "2021-05-25 (fine image)", "1.0"), ("2021-05-27", "2021-05-25", "1.0")]
    group = project.layerTreeRoot().findGroup("season series")
    assert [node.name() for node in group.children()] == ["season 2021-05-25",
                                                          "season 2021-05-27"]
    layer = group.children()[1].layer()
    temporal = layer.temporalProperties()
    assert temporal.isActive()
    assert temporal.mode() == QgsRasterLayerTemporalProperties.ModeFixedTemporalRange
    day = temporal.fixedTemporalRange()
    assert day.begin().toString("yyyy-MM-dd hh:mm") == "2021-05-27 00:00"
    assert day.end().toString("yyyy-MM-dd hh:mm") == "2021-05-28 00:00"
    whole = project.timeSettings().temporalRange()
    assert whole.begin().toString("yyyy-MM-dd") == "2021-05-25"
    project.removeAllMapLayers()
    project.layerTreeRoot().removeChildNode(group)


def test_a_file_without_date_is_named(stfusion_provider, sample_series, tmp_path):
    import processing
    undated = tmp_path / "landsat_scene.tif"
    undated.write_bytes(open(sample_series.fine["2021-05-01"], "rb").read())
    with pytest.raises(QgsProcessingException, match="FINE: no acquisition date.*"
                                                     "landsat_scene.tif"):
        processing.run("stfusion:fuse_series", parameters(
            sample_series, tmp_path, FINE=[str(undated)]))
    assert not (tmp_path / "out").exists()


def test_bad_target_dates_name_the_parameter(stfusion_provider, sample_series, tmp_path):
    import processing
    with pytest.raises(QgsProcessingException, match="TARGET_DATES"):
        processing.run("stfusion:fuse_series", parameters(
            sample_series, tmp_path, TARGET_DATES="2021-05-27/2021-05-01"))
    with pytest.raises(QgsProcessingException, match="TARGET_DATES: no date can be"):
        processing.run("stfusion:fuse_series", parameters(
            sample_series, tmp_path, TARGET_DATES="2022-01-01"))


def test_outputs_are_typed_for_the_model_builder(stfusion_provider):
    from qgis.core import QgsApplication
    algorithm = QgsApplication.processingRegistry().algorithmById("stfusion:fuse_series")
    types = {o.name(): o.type() for o in algorithm.outputDefinitions()}
    assert types == {"OUTPUT_FOLDER": "outputFolder", "SOURCES": "outputFile",
                     "REPORT": "outputHtml", "STACK": "outputRaster",
                     "OUTPUT_LAYERS": "outputMultilayer", "DATES_WRITTEN": "outputNumber",
                     "DATES_KEPT": "outputNumber"}
