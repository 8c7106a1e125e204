"""The plugin's menu path: fuse as a QgsTask, results added to the project when done."""
import os

from qgis.core import QgsMultiBandColorRenderer, QgsProject

from stfusion.tasks import FuseTaskRunner


def wait_for(task, qgis_app, timeout_ms=120000):
    import time
    start = time.time()
    while task.status() not in (task.Complete, task.Terminated):
        qgis_app.processEvents()
        time.sleep(0.02)
        assert (time.time() - start) * 1000 < timeout_ms, "task did not finish"
    # the task's finished() runs on the main thread through the event loop
    for _ in range(50):
        qgis_app.processEvents()


def test_fuse_task_adds_raster_and_report(qgis_app, stfusion_provider, small_scene, tmp_path):
    project = QgsProject.instance()
    layers_before = set(project.mapLayers())
    d0, d1 = small_scene.dates[:2]
    output, report = tmp_path / "fused.tif", tmp_path / "fused.html"
    outcome = {}
    runner = FuseTaskRunner(project=project)
    task = runner.start({"FINE_T1": small_scene.fine[d0], "COARSE_T1": small_scene.coarse[d0],
                         "COARSE_T2": small_scene.coarse[d1], "REFERENCE": small_scene.fine[d1],
                         "OUTPUT": str(output), "REPORT": str(report)},
                        on_done=lambda ok, results: outcome.update(ok=ok, results=results))
    wait_for(task, qgis_app)
    assert outcome["ok"] is True
    added = [project.mapLayer(i) for i in set(project.mapLayers()) - layers_before]
    assert [layer.source() for layer in added] == [str(output)]
    assert isinstance(added[0].renderer(), QgsMultiBandColorRenderer)
    assert added[0].renderer().redBand() == 3  # natural colour: red, green, blue bands
    from processing.core.ProcessingResults import resultsList
    assert str(report) in [result.filename for result in resultsList.getResults()]
    assert os.path.exists(report) and runner.running == []
    project.removeAllMapLayers()


def test_failed_fuse_task_adds_nothing(qgis_app, stfusion_provider, small_scene, tmp_path):
    project = QgsProject.instance()
    d0 = small_scene.dates[0]
    outcome = {}
    runner = FuseTaskRunner(project=project)
    task = runner.start({"FINE_T1": small_scene.fine[d0], "COARSE_T1": small_scene.modis[d0],
                         "COARSE_T2": small_scene.modis[d0], "OUTPUT": str(tmp_path / "x.tif")},
                        on_done=lambda ok, results: outcome.update(ok=ok))
    wait_for(task, qgis_app)
    assert outcome["ok"] is False
    assert project.mapLayers() == {} and not (tmp_path / "x.tif").exists()
