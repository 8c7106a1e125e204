"""Nothing lost, ever (issue #10): outputs never replace inputs, failures are messages naming
the parameter, and no half-written file survives an error, a cancel, a signal or a full disk.

Every test runs real QGIS Processing, GDAL and torch on copies of a small generated scene
(a failing check must never damage the shared session scenes).
"""
import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsProcessingFeedback

from helpers import checksum, qgis_process_in_profile
from stfusion.core import atomic, raster

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def scene(tmp_path):
    """A 64 x 64 sample scene of its own in tmp_path/inputs (tests may try to damage it)."""
    from stfusion.core.sample_scene import make_sample_scene
    return make_sample_scene(str(tmp_path / "inputs"), size=64)


def run(algorithm, parameters, feedback=None):
    import processing  # on sys.path once pytest-qgis has initialised Processing
    return processing.run(f"stfusion:{algorithm}", parameters, feedback=feedback)


def fusion_parameters(scene, **overrides):
    d0, d1 = scene.dates[:2]
    parameters = {"FINE_T1": scene.fine[d0], "COARSE_T1": scene.coarse[d0],
                  "COARSE_T2": scene.coarse[d1]}
    parameters.update(overrides)
    return parameters


def files_in(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())


def input_checksums(scene):
    return {p: checksum(p) for p in list(scene.fine.values()) + list(scene.coarse.values())}


# -- 1. an output never replaces an input ---------------------------------------------------
OUTPUT_ON_INPUT = [                 # algorithm, output, the input it names, other outputs
    ("fuse", "OUTPUT", "FINE_T1", {}),
    ("fuse", "OUTPUT", "COARSE_T2", {}),
    ("fuse", "REPORT", "FINE_T1", {"OUTPUT": "out.tif"}),
    ("starfm", "OUTPUT", "COARSE_T1", {}),
    ("fsdaf", "OUTPUT", "FINE_T1", {}),
    ("train", "OUTPUT_MODEL", "FINE", {}),
    ("train", "REPORT", "COARSE", {"OUTPUT_MODEL": "model.pt"}),
    ("evaluate", "REPORT", "PREDICTION", {}),
    ("resample_modis", "OUTPUT", "REFERENCE", {}),
]


@pytest.mark.parametrize("algorithm,output,victim,extra", OUTPUT_ON_INPUT)
def test_an_output_on_an_input_is_refused_naming_both(stfusion_provider, scene, tmp_path,
                                                      algorithm, output, victim, extra):
    d0, d1 = scene.dates[:2]
    inputs = {"fuse": fusion_parameters(scene), "starfm": fusion_parameters(scene),
              "fsdaf": fusion_parameters(scene),
              "train": {"FINE": [scene.fine[d0], scene.fine[d1]],
                        "COARSE": [scene.coarse[d0], scene.coarse[d1]], "EPOCHS": 1},
              "evaluate": {"PREDICTION": scene.fine[d0], "REFERENCE": scene.fine[d1]},
              "resample_modis": {"INPUT": scene.modis[d1], "REFERENCE": scene.fine[d0],
                                 "BAND_MAP": 1}}[algorithm]
    value = inputs[victim]
    victim_path = value[0] if isinstance(value, list) else value
    parameters = dict(inputs, **{k: str(tmp_path / v) for k, v in extra.items()})
    parameters[output] = victim_path
    before = input_checksums(scene)
    with pytest.raises(QgsProcessingException) as error:
        run(algorithm, parameters)
    assert f"Parameter {output}" in str(error.value) and victim in str(error.value)
    assert "never overwritten" in str(error.value)
    assert input_checksums(scene) == before
    assert [f for f in files_in(tmp_path) if not f.startswith("inputs")] == []


def test_an_output_reaching_an_input_through_a_link_or_another_case_is_refused(
        stfusion_provider, scene, tmp_path):
    d0 = scene.dates[0]
    link = tmp_path / "link.tif"
    link.symlink_to(scene.fine[d0])
    before = input_checksums(scene)
    for target in (str(link), scene.fine[d0][:-4] + ".TIF"):
        with pytest.raises(QgsProcessingException, match="OUTPUT.*FINE_T1"):
            run("starfm", fusion_parameters(scene, OUTPUT=target))
    assert input_checksums(scene) == before


def test_two_outputs_on_one_file_are_refused(stfusion_provider, scene, tmp_path):
    same = str(tmp_path / "fused.tif")
    with pytest.raises(QgsProcessingException,
                       match="Parameters OUTPUT and REPORT both write"):
        run("fuse", fusion_parameters(scene, OUTPUT=same, REPORT=same))
    assert not os.path.exists(same)


def test_a_raster_output_not_named_tif_is_refused(stfusion_provider, scene, tmp_path):
    with pytest.raises(QgsProcessingException, match="OUTPUT: 'fused.png' does not name a "
                                                     "GeoTIFF.*ending in .tif"):
        run("starfm", fusion_parameters(scene, OUTPUT=str(tmp_path / "fused.png")))
    assert not (tmp_path / "fused.png").exists()


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody can write to: a read-only tmpfs as root (root ignores permission
    bits), else a folder without write permission."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_output_folder_is_refused_before_any_work(stfusion_provider, scene,
                                                              read_only_folder):
    feedback = QgsProcessingFeedback()
    started = time.perf_counter()
    with pytest.raises(QgsProcessingException, match="Parameter OUTPUT: cannot write .*"
                                                     "not writable"):
        run("fuse", fusion_parameters(scene, OUTPUT=str(read_only_folder / "fused.tif")),
            feedback)
    assert "preparing" not in feedback.textLog() and time.perf_counter() - started < 5


# -- 2. sidecars never replace unrelated files; inputs are not written --------------------
def test_report_sidecars_are_named_after_the_whole_report_name(stfusion_provider, scene,
                                                               tmp_path):
    d0, d1 = scene.dates[:2]
    unrelated = tmp_path / "dataset.json"
    unrelated.write_text('{"mine": true}')
    results = run("evaluate", {"PREDICTION": scene.fine[d0], "REFERENCE": scene.fine[d1],
                               "REPORT": str(tmp_path / "dataset.html")})
    assert unrelated.read_text() == '{"mine": true}'
    assert results["JSON"] == str(tmp_path / "dataset.html.json")
    assert results["CSV"] == str(tmp_path / "dataset.html.csv")
    assert sorted(files_in(tmp_path)) == sorted(
        ["dataset.html", "dataset.html.csv", "dataset.html.json", "dataset.json"]
        + [f for f in files_in(tmp_path) if f.startswith("inputs")])


def test_runs_leave_their_inputs_and_the_input_folder_untouched(stfusion_provider, scene,
                                                                tmp_path):
    folder = Path(scene.fine[scene.dates[0]]).parent
    before = {f: (checksum(folder / f), (folder / f).stat().st_mtime_ns)
              for f in files_in(folder)}
    d0, d1 = scene.dates[:2]
    run("fuse", fusion_parameters(scene, OUTPUT=str(tmp_path / "fused.tif"),
                                  REFERENCE=scene.fine[d1], REPORT=str(tmp_path / "r.html")))
    run("starfm", fusion_parameters(scene, OUTPUT=str(tmp_path / "starfm.tif")))
    run("evaluate", {"PREDICTION": str(tmp_path / "starfm.tif"), "REFERENCE": scene.fine[d1],
                     "COARSE": scene.coarse[d1], "REPORT": str(tmp_path / "e.html")})
    after = {f: (checksum(folder / f), (folder / f).stat().st_mtime_ns)
             for f in files_in(folder)}
    assert after == before


# -- 3. temporary files never survive -------------------------------------------------------
FULL_DISK_SCRIPT = """
import resource, signal, sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from stfusion.core import raster
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # a write beyond the limit fails (EFBIG)
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
values = np.random.default_rng(0).random((4, 512, 512), dtype=np.float32)
grid = raster.Grid(512, 512, (0, 30, 0, 0, 0, -30), "")
try:
    raster.write_raster(sys.argv[1], values, grid)
except raster.WriteError as exc:
    print("WriteError:", exc)
"""


def test_a_write_error_while_closing_removes_the_temporary_file(tmp_path):
    """The kernel refuses writes beyond 64 KB (as on a full disk): GDAL fails while it
    flushes the compressed blocks, and neither the output nor a .part file remains."""
    target = tmp_path / "out" / "big.tif"
    result = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", FULL_DISK_SCRIPT,
                             str(target), str(ROOT / "build" / "plugins")],
                            capture_output=True, text=True, timeout=120)
    assert "WriteError: cannot write '" + str(target) in result.stdout, result.stderr
    assert "MB free on that disk" in result.stdout
    assert files_in(tmp_path) == []


@pytest.fixture
def small_disk(tmp_path):
    """A 160 KB tmpfs (root only): a real full disk."""
    folder = tmp_path / "small_disk"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(folder)],
            capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_is_a_message_naming_the_output_and_leaves_nothing(
        stfusion_provider, sample_scene, small_disk):
    d0, d1 = sample_scene.dates[:2]
    with pytest.raises(QgsProcessingException) as error:
        run("starfm", {"FINE_T1": sample_scene.fine[d0], "COARSE_T1": sample_scene.coarse[d0],
                       "COARSE_T2": sample_scene.coarse[d1],
                       "OUTPUT": str(small_disk / "fused.tif")})
    message = str(error.value)
    assert message.startswith("Parameter OUTPUT: cannot write") and "free disk space" in message
    assert files_in(small_disk) == []


def test_stale_temporary_files_of_dead_processes_are_removed(stfusion_provider, scene,
                                                             tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "60"])
    try:
        stale = tmp_path / f".fused.tif.{dead.pid}.x1y2.part.tif"
        busy = tmp_path / f".fused.tif.{alive.pid}.a1b2.part.tif"
        for leftover in (stale, busy):
            leftover.write_bytes(b"half a GeoTIFF")
        run("starfm", fusion_parameters(scene, OUTPUT=str(tmp_path / "fused.tif")))
        assert not stale.exists() and busy.exists()
        assert raster.raster_info(str(tmp_path / "fused.tif")).band_count == 6
    finally:
        alive.kill()
        alive.wait()


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_cancels_a_qgis_process_run_and_leaves_no_part_file(
        sample_scene, tmp_path, signal_number):
    command, env = qgis_process_in_profile(tmp_path / "profile")
    out = tmp_path / "out"
    out.mkdir()
    d0, d1 = sample_scene.dates[:2]
    child = subprocess.Popen(
        [command, "run", "stfusion:starfm", "--", f"FINE_T1={sample_scene.fine[d0]}",
         f"COARSE_T1={sample_scene.coarse[d0]}", f"COARSE_T2={sample_scene.coarse[d1]}",
         f"OUTPUT={out / 'fused.tif'}"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not any(".part" in f for f in files_in(out)) and time.monotonic() < deadline:
        assert child.poll() is None, child.stdout.read()
        time.sleep(0.01)
    child.send_signal(signal_number)                 # mid-run: the .part file exists
    log, _ = child.communicate(timeout=60)
    assert child.returncode != 0
    assert "Canceled; nothing was written" in log
    assert files_in(out) == []


# -- 4. cancel: also during the last tile, and nothing is committed -------------------------
@pytest.mark.parametrize("algorithm", ["fuse", "starfm", "fsdaf"])
def test_cancel_during_the_last_tile_writes_nothing(stfusion_provider, scene, tmp_path,
                                                    algorithm):
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda value: value >= 99.9 and feedback.cancel())
    parameters = fusion_parameters(scene, OUTPUT=str(tmp_path / "fused.tif"))
    if algorithm == "fuse":
        parameters["REPORT"] = str(tmp_path / "report.html")
    with pytest.raises(QgsProcessingException, match="^Canceled; nothing was written"):
        run(algorithm, parameters, feedback)
    assert [f for f in files_in(tmp_path) if not f.startswith("inputs")] == []


# -- 5. one run, one unit -------------------------------------------------------------------
def test_a_failing_report_publishes_no_raster(stfusion_provider, scene, tmp_path):
    """The report cannot be written (its name turns into a folder once the raster is
    done): the run fails naming REPORT, and the finished raster is not published."""
    report = tmp_path / "report.html"
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda value: value >= 99.9 and report.mkdir(
        exist_ok=True))
    with pytest.raises(QgsProcessingException, match="Parameter REPORT: "):
        run("fuse", fusion_parameters(scene, OUTPUT=str(tmp_path / "fused.tif"),
                                      REPORT=str(report)), feedback)
    assert [f for f in files_in(tmp_path) if not f.startswith("inputs")] == []


def test_staged_outputs_are_readable_and_published_together_or_not_at_all(tmp_path):
    grid = raster.Grid(8, 8, (0, 30, 0, 0, 0, -30), "")
    values = np.ones((1, 8, 8), np.float32)
    with atomic.run_outputs() as outputs:
        raster.write_raster(str(tmp_path / "a.tif"), values, grid)
        atomic.write_text(str(tmp_path / "a.txt"), "report")
        assert files_in(tmp_path) != [] and not (tmp_path / "a.tif").exists()
        np.testing.assert_array_equal(raster.read_raster(str(tmp_path / "a.tif")), values)
        outputs.commit()
    assert files_in(tmp_path) == ["a.tif", "a.txt"]
    with pytest.raises(RuntimeError):
        with atomic.run_outputs():
            raster.write_raster(str(tmp_path / "b.tif"), values, grid)
            raise RuntimeError("the report failed")
    assert files_in(tmp_path) == ["a.tif", "a.txt"]
    with pytest.raises(IsADirectoryError):      # a rename fails: the old files come back
        with atomic.run_outputs() as outputs:
            raster.write_raster(str(tmp_path / "a.tif"), 2 * values, grid)
            atomic.write_text(str(tmp_path / "c.txt"), "report")
            (tmp_path / "c.txt").mkdir()
            outputs.commit()
    assert files_in(tmp_path) == ["a.tif", "a.txt"]
    np.testing.assert_array_equal(raster.read_raster(str(tmp_path / "a.tif")), values)


# -- 6. model files: metadata checked against a schema before anything is built -------------
def default_model_parts():
    import torch
    from stfusion.core import fusion
    blob = torch.load(fusion.default_model_path(), weights_only=True)
    return json.loads(blob["metadata_json"]), blob["state_dict"]


def model_file(path, metadata, state):
    import torch
    from stfusion.core import models
    torch.save({"format": models.FORMAT, "state_dict": state,
                "metadata_json": json.dumps(metadata)}, str(path))
    return str(path)


BOMB_SCRIPT = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[2])
from stfusion.core import models
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
try:
    models.load_model(sys.argv[1])
    print(json.dumps({"refused": None}))
except models.ModelFileError as exc:
    print(json.dumps({"refused": str(exc), "seconds": time.perf_counter() - started,
                      "extra_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                   - before) / 1024}))
"""


@pytest.mark.parametrize("hidden", [30000, 200000])
def test_a_model_metadata_size_bomb_is_refused_fast_and_small(tmp_path, hidden):
    metadata, state = default_model_parts()
    bomb = model_file(tmp_path / "bomb.pt", dict(metadata, options={"hidden": hidden}), state)
    assert os.path.getsize(bomb) < 20000
    result = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", BOMB_SCRIPT, bomb,
                             str(ROOT / "build" / "plugins")],
                            capture_output=True, text=True, timeout=120)
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["refused"].startswith(f"Parameter MODEL: model file '{bomb}': metadata "
                                         f"'options.hidden' is {hidden}, outside 1 to 256")
    assert outcome["seconds"] < 1.0 and outcome["extra_mb"] < 100


@pytest.mark.parametrize("change,expected", [
    ({"format_version": "abc"}, "metadata 'format_version' is \"abc\", not a number"),
    ({"options": {"hiden": 12}}, "metadata 'options' has unknown keys ['hiden']"),
    ({"options": {"hidden": 2.5}}, "metadata 'options.hidden' is 2.5, not a number"),
    ({"fusion_options": {"window": 10 ** 9}}, "'fusion_options.window' is 1000000000, outside"),
    ({"architecture": "resnet"}, "metadata 'architecture' is 'resnet', not one of"),
    ({"architecture": "paper", "band_count": -3}, "metadata 'band_count' is -3, outside 1"),
])
def test_model_metadata_outside_the_schema_is_a_parameter_model_message(
        stfusion_provider, scene, tmp_path, change, expected):
    metadata, state = default_model_parts()
    path = model_file(tmp_path / "model.pt", dict(metadata, **change), state)
    with pytest.raises(QgsProcessingException) as error:
        run("fuse", fusion_parameters(scene, MODEL=path, OUTPUT=str(tmp_path / "out.tif")))
    assert str(error.value).startswith(f"Parameter MODEL: model file '{path}': ")
    assert expected in str(error.value)
    assert not (tmp_path / "out.tif").exists()


class CodePayload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_model_with_code_is_refused_without_pytorchs_unsafe_advice(tmp_path):
    import torch
    from stfusion.core import models
    path = tmp_path / "evil.pt"
    torch.save({"format": models.FORMAT, "state_dict": {}, "metadata_json": "{}",
                "x": CodePayload()}, str(path))
    with pytest.raises(models.ModelFileError) as error:
        models.load_model(str(path))
    message = str(error.value)
    assert message.startswith("Parameter MODEL: ") and "Python objects" in message
    assert "system" in message and "weights_only" not in message


# -- 7. expected failures are messages naming the parameter ---------------------------------
def write_like(path, values, like, encoding=None):
    info = raster.raster_info(like)
    encoding = encoding or raster.OutputEncoding.like(info)
    return raster.write_raster(str(path), values, info.grid, encoding, info.band_names)


@pytest.mark.parametrize("algorithm", ["fuse", "starfm", "fsdaf"])
@pytest.mark.parametrize("empty", ["nodata", "NaN"])
def test_an_empty_fine_image_is_a_message_naming_it(stfusion_provider, scene, tmp_path,
                                                    algorithm, empty):
    d0 = scene.dates[0]
    values = np.full((6, 64, 64), np.nan, np.float32)
    encoding = None if empty == "nodata" else raster.OutputEncoding(gdal.GDT_Float32, -9999)
    blank = write_like(tmp_path / "blank.tif", values, scene.fine[d0], encoding)
    if empty == "NaN":      # NaN values, not the declared nodata value
        ds = gdal.Open(blank, gdal.GA_Update)
        for b in range(6):
            ds.GetRasterBand(b + 1).WriteArray(values[b])
        ds = None
    with pytest.raises(QgsProcessingException,
                       match="^Parameter FINE_T1: no pixel holds data: every pixel is nodata "
                             "or NaN"):
        run(algorithm, fusion_parameters(scene, FINE_T1=blank,
                                         OUTPUT=str(tmp_path / "out.tif")))
    assert not (tmp_path / "out.tif").exists()


def test_inputs_without_common_data_are_a_message(stfusion_provider, scene, tmp_path):
    d0, d1 = scene.dates[:2]
    left = raster.read_raster(scene.fine[d0])
    left[:, :, 32:] = np.nan
    right = raster.read_raster(scene.coarse[d1])
    right[:, :, :32] = np.nan
    parameters = fusion_parameters(scene, FINE_T1=write_like(tmp_path / "l.tif", left,
                                                             scene.fine[d0]),
                                   COARSE_T2=write_like(tmp_path / "r.tif", right,
                                                        scene.coarse[d1]),
                                   OUTPUT=str(tmp_path / "out.tif"))
    with pytest.raises(QgsProcessingException, match="no pixel is valid in all of FINE_T1, "
                                                     "COARSE_T1, COARSE_T2 at once"):
        run("starfm", parameters)


def test_a_paper_model_of_other_bands_is_a_message_naming_model(stfusion_provider, scene,
                                                                 tmp_path):
    from stfusion.core import models
    path = str(tmp_path / "paper3.pt")
    models.save_model(path, models.build_model("paper", 3),
                      {"architecture": "paper", "band_count": 3, "trained": True})
    with pytest.raises(QgsProcessingException,
                       match="^Parameter MODEL: this paper model was trained on 3 bands but "
                             "the inputs have 6"):
        run("fuse", fusion_parameters(scene, MODEL=path, OUTPUT=str(tmp_path / "out.tif")))


# -- 8. no silently wrong results ------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ["fuse", "starfm", "fsdaf"])
def test_absurd_values_are_nodata_at_their_pixel_only_with_a_warning(stfusion_provider, scene,
                                                                     tmp_path, algorithm):
    d0 = scene.dates[0]
    fine = raster.read_raster(scene.fine[d0])
    fine[:, 20, 30] = 1e30               # an undeclared fill value
    fine[2, 40, 10] = -3.4e38
    float_fine = write_like(tmp_path / "fine.tif", fine, scene.fine[d0],
                            raster.OutputEncoding(gdal.GDT_Float32))
    clean = raster.read_raster(run(algorithm, fusion_parameters(
        scene, OUTPUT=str(tmp_path / "clean.tif")))["OUTPUT"])
    feedback = QgsProcessingFeedback()
    fused = raster.read_raster(run(algorithm, fusion_parameters(
        scene, FINE_T1=float_fine, OUTPUT=str(tmp_path / "fused.tif")), feedback)["OUTPUT"])
    expected = ~np.isfinite(clean).all(0)
    expected[20, 30] = expected[40, 10] = True
    np.testing.assert_array_equal(~np.isfinite(fused).all(0), expected)
    assert "Parameter FINE_T1: values of magnitude 1e+10 or more" in feedback.textLog()


def test_evaluate_of_an_empty_prediction_is_a_message(stfusion_provider, scene, tmp_path):
    d1 = scene.dates[1]
    empty = write_like(tmp_path / "empty.tif", np.full((6, 64, 64), np.nan, np.float32),
                       scene.fine[d1])
    with pytest.raises(QgsProcessingException, match="^Parameter PREDICTION: no pixel holds"):
        run("evaluate", {"PREDICTION": empty, "REFERENCE": scene.fine[d1],
                         "REPORT": str(tmp_path / "r.html")})
    assert files_in(tmp_path) == ["empty.tif"] + [f for f in files_in(tmp_path)
                                                  if f.startswith("inputs")]


def strict_json(text):
    """Parse RFC 8259 JSON: Python's parser would accept NaN and Infinity."""
    def refuse(constant):
        raise AssertionError(f"invalid JSON constant {constant}")
    return json.loads(text, parse_constant=refuse)


def test_report_json_is_strict_json_even_for_an_infinite_psnr(stfusion_provider, scene,
                                                              tmp_path):
    d1 = scene.dates[1]
    results = run("evaluate", {"PREDICTION": scene.fine[d1], "REFERENCE": scene.fine[d1],
                               "REPORT": str(tmp_path / "same.html")})
    assert results["PSNR"] == float("inf")          # a perfect prediction
    data = strict_json(Path(results["JSON"]).read_text())
    assert data["methods"][0]["mean"]["PSNR"] == "inf"


def test_report_sidecars_write_null_for_non_finite_numbers(tmp_path):
    from stfusion.core import report
    paths = report.write_fusion_report(str(tmp_path / "run.html"),
                                       {"gain": float("inf"), "loss": float("nan"),
                                        "scores": [1.5, float("-inf")]})
    data = strict_json(Path(paths.json).read_text())
    assert data == {"run": {"gain": None, "loss": None, "scores": [1.5, None]}}


def test_training_that_diverges_stops_with_a_message_and_no_model(stfusion_provider, scene,
                                                                  tmp_path):
    d0, d1 = scene.dates[:2]
    with pytest.raises(QgsProcessingException,
                       match="^Parameter LEARNING_RATE: training diverged in epoch"):
        run("train", {"FINE": [scene.fine[d0], scene.fine[d1]],
                      "COARSE": [scene.coarse[d0], scene.coarse[d1]], "ARCHITECTURE": 1,
                      "LEARNING_RATE": 1e6, "EPOCHS": 3,
                      "OUTPUT_MODEL": str(tmp_path / "model.pt"),
                      "REPORT": str(tmp_path / "model.html")})
    assert [f for f in files_in(tmp_path) if not f.startswith("inputs")] == []


# -- 9. ADAPT is never a silent no-op --------------------------------------------------------
def test_adapt_with_one_pair_and_the_default_model_is_refused(stfusion_provider, scene,
                                                              tmp_path):
    with pytest.raises(QgsProcessingException,
                       match="^Parameter ADAPT: fine-tuning the default model"):
        run("fuse", fusion_parameters(scene, ADAPT=5, OUTPUT=str(tmp_path / "out.tif")))
    assert not (tmp_path / "out.tif").exists()


# -- 10. smaller ones -----------------------------------------------------------------------
def test_a_float64_fine_image_gives_a_float64_output(stfusion_provider, scene, tmp_path):
    d0 = scene.dates[0]
    fine64 = write_like(tmp_path / "fine64.tif", raster.read_raster(scene.fine[d0]),
                        scene.fine[d0], raster.OutputEncoding(gdal.GDT_Float64))
    result = run("starfm", fusion_parameters(scene, FINE_T1=fine64,
                                             OUTPUT=str(tmp_path / "out.tif")))
    assert raster.raster_info(result["OUTPUT"]).gdal_type == gdal.GDT_Float64


def test_csv_cells_that_look_like_formulas_are_quoted(stfusion_provider, scene, tmp_path):
    d0, d1 = scene.dates[:2]
    names = "=cmd|' /C calc'!A0,+1+2,-x,@SUM(A1),nir,-0.5"
    results = run("evaluate", {"PREDICTION": scene.fine[d0], "REFERENCE": scene.fine[d1],
                               "BAND_NAMES": names, "REPORT": str(tmp_path / "r.html")})
    rows = list(csv.reader(Path(results["CSV"]).read_text().splitlines()))
    bands = [row[1] for row in rows[1:]]
    assert {"'=cmd|' /C calc'!A0", "'+1+2", "'-x", "'@SUM(A1)", "nir", "-0.5"} <= set(bands)
    assert all(cell == "" or float(cell) == float(cell) or cell == "nan"
               for row in rows[1:] for cell in row[2:])       # numbers stay numbers


def test_a_container_as_input_lists_its_subdatasets(stfusion_provider, scene, tmp_path):
    d0 = scene.dates[0]
    container = str(tmp_path / "two_images.gpkg")
    for table in ("first", "second"):
        gdal.Translate(container, scene.fine[d0], format="GPKG", bandList=[1, 2, 3],
                       outputType=gdal.GDT_Byte, scaleParams=[[]],
                       creationOptions=[f"RASTER_TABLE={table}", "APPEND_SUBDATASET=YES"])
    with pytest.raises(QgsProcessingException) as error:
        run("starfm", fusion_parameters(scene, FINE_T1=container,
                                        OUTPUT=str(tmp_path / "out.tif")))
    message = str(error.value)
    assert "Parameter FINE_T1: " in message and "container of 2 subdatasets" in message
    assert f"GPKG:{container}:first" in message and f"GPKG:{container}:second" in message


def test_an_hdf4_container_as_fusion_input_lists_its_subdatasets(stfusion_provider, scene,
                                                                tmp_path):
    pytest.importorskip("pyhdf.SD", reason="pyhdf writes the HDF4 fixtures (scripts/setup.sh)")
    from product_fixtures import make_mod09ga
    container = str(make_mod09ga(tmp_path / "modis").path)
    with pytest.raises(QgsProcessingException) as error:
        run("starfm", fusion_parameters(scene, COARSE_T2=container,
                                        OUTPUT=str(tmp_path / "out.tif")))
    message = str(error.value)
    assert "Parameter COARSE_T2: " in message and "subdatasets" in message
    assert f'HDF4_EOS:EOS_GRID:"{container}":MODIS_Grid_500m_2D:sur_refl_b01_1' in message
