"""stfusion:evaluate through Processing: outputs, the table layer, clear errors, the real CIA
case, and the report rendering in headless Chromium."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from stfusion.core import raster

ALG = "stfusion:evaluate"


def utm_grid(width, height):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    return raster.Grid(width, height, (500000.0, 30.0, 0.0, 5100000.0, 0.0, -30.0),
                       srs.ExportToWkt())


def write(path, values, names=()):
    values = np.asarray(values, dtype=np.float32)
    return raster.write_raster(str(path), values, utm_grid(values.shape[2], values.shape[1]),
                               raster.OutputEncoding(gdal.GDT_Int16, -9999, 1e-4, 0.0), names)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """Reference, prediction, coarse and comparison rasters (3 named bands, 48 x 40)."""
    folder = tmp_path_factory.mktemp("evaluate")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:40, 0:48]
    base = 0.15 + 0.08 * np.sin(x / 4.0) + 0.06 * ((x // 8 + y // 8) % 2)
    ref = np.stack([base * f for f in (0.5, 0.8, 1.6)])
    names = ("green", "red", "nir")
    return {
        "REFERENCE": write(folder / "reference.tif", ref, names),
        "PREDICTION": write(folder / "fused.tif", ref + 0.01 * rng.standard_normal(ref.shape),
                            names),
        "COARSE": write(folder / "coarse.tif", ref * 0 + ref.mean(axis=(1, 2))[:, None, None]),
        "COMPARE": write(folder / "starfm.tif", ref + 0.02 * rng.standard_normal(ref.shape)),
        "folder": folder,
    }


def run(params):
    import processing
    return processing.run(ALG, params)


def test_outputs_report_and_table(stfusion_provider, scene, tmp_path):
    from qgis.core import QgsVectorLayer, QgsWkbTypes
    html = tmp_path / "report.html"
    result = run({"PREDICTION": scene["PREDICTION"], "REFERENCE": scene["REFERENCE"],
                  "COARSE": scene["COARSE"], "COMPARE": scene["COMPARE"],
                  "REPORT": str(html), "TABLE": "TEMPORARY_OUTPUT"})
    assert result["REPORT"] == str(html) and html.exists()
    assert Path(result["JSON"]) == tmp_path / "report.html.json" and Path(result["CSV"]).exists()
    data = json.loads(Path(result["JSON"]).read_text())
    assert data["bands"] == ["green", "red", "nir"]            # from the files
    assert [m["role"] for m in data["methods"]] == ["prediction", "compare", "coarse"]
    for name in ("RMSE", "SSIM", "ERGAS", "SAM"):
        assert result[name] == pytest.approx(data["methods"][0]["mean"][name])
    assert 0.009 < result["RMSE"] < 0.011 and 0 < result["SSIM"] < 1
    assert "500 m MODIS over the 30 fine pixel" in data["ratio_note"]
    table = result["TABLE"]
    if not isinstance(table, QgsVectorLayer):
        table = QgsVectorLayer(table, "t", "ogr")
    assert table.wkbType() == QgsWkbTypes.NoGeometry
    fields = table.fields().names()
    assert fields[:2] == ["method", "band"]
    assert {"RMSE", "SSIM", "ERGAS", "SAM", "MAEC_coarse", "MAEC_compare"} <= set(fields)
    rows = {(f["method"], f["band"]): f for f in table.getFeatures()}
    assert len(rows) == 3 * 4
    assert rows[("prediction", "mean")]["RMSE"] == pytest.approx(result["RMSE"])
    assert rows[("prediction", "nir")]["MAEC_coarse"] < -0.5  # much better than the coarse


def test_ratio_and_band_names_parameters(stfusion_provider, scene, tmp_path):
    result = run({"PREDICTION": scene["PREDICTION"], "REFERENCE": scene["REFERENCE"],
                  "BAND_NAMES": "g, r, n", "RATIO": 0.1,
                  "REPORT": str(tmp_path / "r.html"), "TABLE": "TEMPORARY_OUTPUT"})
    data = json.loads(Path(result["JSON"]).read_text())
    assert data["bands"] == ["g", "r", "n"] and data["ratio"] == pytest.approx(0.1)
    assert len(data["methods"]) == 1


def test_clear_errors_name_the_parameters(stfusion_provider, scene, tmp_path):
    from qgis.core import QgsProcessingException
    other = write(tmp_path / "other_grid.tif", np.full((3, 40, 47), 0.1))
    two_bands = write(tmp_path / "two.tif", np.full((2, 40, 48), 0.1))
    base = {"PREDICTION": scene["PREDICTION"], "REFERENCE": scene["REFERENCE"],
            "REPORT": str(tmp_path / "x.html")}
    with pytest.raises(QgsProcessingException, match="PREDICTION is not on the grid of REFERENCE"):
        run({**base, "PREDICTION": other})
    with pytest.raises(QgsProcessingException, match="COARSE is not on the grid of REFERENCE"):
        run({**base, "COARSE": other})
    with pytest.raises(QgsProcessingException, match="COMPARE has 2 bands but REFERENCE has 3"):
        run({**base, "COMPARE": two_bands})
    with pytest.raises(QgsProcessingException, match="BAND_NAMES"):
        run({**base, "BAND_NAMES": "a,b"})
    assert not (tmp_path / "x.html").exists()


def test_cia_case0_through_processing(stfusion_provider, shared_data, tmp_path):
    site = shared_data / "cia"
    meta = json.loads((site / "dataset.json").read_text())
    t1, t2 = "2001-10-08", "2001-10-17"
    f1, c1, c2 = (raster.read_raster(str(site / meta[kind][date]))
                  for kind, date in (("fine", t1), ("coarse", t1), ("coarse", t2)))
    reference = str(site / meta["fine"][t2])
    prediction = raster.write_raster(str(tmp_path / "f1_dc.tif"), f1 + (c2 - c1),
                                     raster.raster_info(reference).grid)
    result = run({"PREDICTION": prediction, "REFERENCE": reference,
                  "COARSE": str(site / meta["coarse"][t2]),
                  "BAND_NAMES": ",".join(meta["bands"]),
                  "REPORT": str(tmp_path / "cia0.html"), "TABLE": "TEMPORARY_OUTPUT"})
    assert result["RMSE"] == pytest.approx(0.036, abs=0.001)   # shared/data/README.md
    assert "0.0362" in Path(result["REPORT"]).read_text(encoding="utf-8")


def test_report_renders_in_headless_chromium(stfusion_provider, scene, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    html = tmp_path / "report.html"
    run({"PREDICTION": scene["PREDICTION"], "REFERENCE": scene["REFERENCE"],
         "COARSE": scene["COARSE"], "COMPARE": scene["COMPARE"], "REPORT": str(html)})
    text = html.read_text(encoding="utf-8")
    sources = re.findall(r'<img[^>]*\ssrc="([^"]+)"', text) + \
        re.findall(r'<image[^>]*\shref="([^"]+)"', text)
    assert len(sources) >= 6
    for source in sources:   # embedded, or a file that exists
        assert source.startswith("data:image/png;base64,") or \
            (html.parent / source).exists(), source[:80]
    shot = tmp_path / "shot.png"
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr",
             "--v=0"]
    env = dict(os.environ, HOME=str(tmp_path))
    dom = subprocess.run(flags + ["--dump-dom", html.as_uri()], capture_output=True,
                         text=True, timeout=90, env=env)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Comparison of methods" in dom.stdout and "<svg" in dom.stdout
    for problem in ("Uncaught", "Failed to load resource", "ERR_FILE_NOT_FOUND"):
        assert problem not in dom.stderr, dom.stderr[-2000:]
    subprocess.run(flags + ["--hide-scrollbars", "--window-size=1200,1800",
                            f"--screenshot={shot}", html.as_uri()],
                   capture_output=True, timeout=90, env=env, check=True)
    image = gdal.Open(str(shot)).ReadAsArray()
    assert image.shape[1:] == (1800, 1200)
    assert image.std() > 20          # not a blank page
