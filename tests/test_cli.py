"""The command line shares the Processing algorithms' parameters (one definition) and runs
without QGIS."""
import os
import subprocess
import sys

import pytest

from stfusion import cli
from stfusion.core import parameters


def _parser_defaults(command):
    parser = cli.build_parser()
    actions = parser._subparsers._group_actions[0].choices[command]._actions
    return {a.dest: (a.default, a.required, tuple(a.choices or ())) for a in actions}


@pytest.mark.parametrize("command, algorithm_id", [("fuse", "stfusion:fuse"),
                                                   ("series", "stfusion:fuse_series")])
def test_options_are_the_algorithm_parameters(stfusion_provider, command, algorithm_id):
    from qgis.core import QgsApplication
    algorithm = QgsApplication.processingRegistry().algorithmById(algorithm_id)
    specs = cli.COMMANDS[command].specs
    options = _parser_defaults(command)
    for definition in algorithm.parameterDefinitions():
        spec = parameters.by_name(specs, definition.name())
        default, required, choices = options[definition.name()]
        assert required == (not definition.flags() & definition.FlagOptional
                            and definition.defaultValue() is None), definition.name()
        if choices:
            assert list(choices) == definition.options()
            assert default == choices[definition.defaultValue()]
        elif definition.defaultValue() is not None:
            assert default == definition.defaultValue(), definition.name()
        assert definition.description() == spec.label
        assert definition.help() == spec.help and spec.help      # one help line for both
        assert bool(definition.flags() & definition.FlagAdvanced) == spec.advanced
    assert [d.name() for d in algorithm.parameterDefinitions()] == [s.name for s in specs]
    assert set(options) - {spec.name for spec in specs} == {"help", "workers"}
    help_text = " ".join(cli.build_parser()._subparsers._group_actions[0].choices[command]
                         .format_help().split())
    assert "Dask scheduler address (empty = run in this process): address of a Dask " \
           "scheduler (e.g. tcp://host:8786)" in help_text


def test_the_tile_size_default_is_fuse_s():
    pytest.importorskip("torch")
    from stfusion.core import fusion
    assert parameters.by_name(parameters.FUSE, "TILE_SIZE").default == fusion.FUSE_TILE


def test_choices_by_name_or_index_and_ranges_checked(capsys):
    parser = cli.build_parser()
    base = ["fuse", "--fine-t1", "f", "--coarse-t1", "c", "--coarse-t2", "c2", "--output", "o"]
    assert parser.parse_args(base + ["--DEVICE", "1"]).DEVICE == "cpu"
    assert parser.parse_args(base + ["--device", "cuda"]).DEVICE == "cuda"
    assert parser.parse_args(base).TILE_SIZE == 640
    with pytest.raises(SystemExit):
        parser.parse_args(base + ["--tile-size", "8"])
    assert "8 is outside 32..8192" in capsys.readouterr().err


def test_both_scheduler_and_workers_is_refused(capsys):
    base = ["fuse", "--fine-t1", "f", "--coarse-t1", "c", "--coarse-t2", "c2", "--output", "o"]
    with pytest.raises(SystemExit) as stop:
        cli.main(base + ["--workers", "2", "--scheduler", "tcp://127.0.0.1:9"])
    assert stop.value.code == 2
    assert "not both" in capsys.readouterr().err


def test_runs_without_qgis_and_names_the_bad_parameter(small_scene, tmp_path):
    """A fresh Python in which qgis cannot be imported: the command line still works."""
    d0, d1 = small_scene.dates[:2]
    blocker = tmp_path / "qgis"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('no QGIS here')\n")
    missing = tmp_path / "missing.tif"
    run = subprocess.run(
        [sys.executable, "-m", "stfusion.cli", "fuse", "--fine-t1", small_scene.fine[d0],
         "--coarse-t1", small_scene.coarse[d0], "--coarse-t2", str(missing),
         "--output", str(tmp_path / "out.tif")],
        capture_output=True, text=True, timeout=300,
        env={**_environment(), "PYTHONPATH": f"{tmp_path}:{cli.__file__.rsplit('/', 2)[0]}"})
    assert run.returncode == cli.EXIT_BAD_INPUT, run.stderr
    assert "stfusion: error:" in run.stderr and "missing.tif" in run.stderr
    assert not (tmp_path / "out.tif").exists()


def _environment():
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_sigterm_ends_the_run_with_no_partial_output(small_scene, tmp_path):
    d0, d1 = small_scene.dates[:2]
    output = tmp_path / "out" / "fused.tif"
    process = subprocess.Popen(
        [sys.executable, "-m", "stfusion.cli", "fuse", "--fine-t1", small_scene.fine[d0],
         "--coarse-t1", small_scene.coarse[d0], "--coarse-t2", small_scene.coarse[d1],
         "--tile-size", "32", "--output", str(output)],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    for line in process.stderr:               # wait until tiles are in the output file
        if line.startswith("30%"):
            assert [n for n in os.listdir(output.parent) if n.endswith(".part.tif")]
            break
    process.terminate()
    _out, rest = process.communicate(timeout=120)
    assert process.returncode == cli.EXIT_INTERRUPTED, rest
    assert "interrupted; no output was written" in rest
    assert os.listdir(output.parent) == []


def test_an_output_on_an_input_is_refused_before_any_work(small_scene, capsys):
    d0, d1 = small_scene.dates[:2]
    status = cli.main(["fuse", "--fine-t1", small_scene.fine[d0], "--coarse-t1",
                       small_scene.coarse[d0], "--coarse-t2", small_scene.coarse[d1],
                       "--output", small_scene.coarse[d1]])
    assert status == cli.EXIT_BAD_INPUT
    assert "--output: " in capsys.readouterr().err
    assert raster_readable(small_scene.coarse[d1])


def raster_readable(path):
    from stfusion.core import raster
    return raster.read_raster(path).shape[0] == 6
