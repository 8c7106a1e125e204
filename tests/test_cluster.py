"""The one driver's tiles on a real Dask LocalCluster (2 worker processes, 1 thread each):
fuse and a series bit-identical to the in-process run, survives a killed worker, cancels
cleanly, fails fast on a wrong address."""
import functools
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("torch")
distributed = pytest.importorskip("distributed")

from stfusion import cli  # noqa: E402
from stfusion.core import cluster, fusion, methods, raster, starfm, tiling  # noqa: E402
from stfusion.core.errors import InputError  # noqa: E402

TILE = 64            # the 160-pixel scene in 9 tiles


def _inputs(scene):
    d0, d1 = scene.dates[:2]
    return scene.fine[d0], scene.coarse[d0], scene.coarse[d1]


def _cli_arguments(scene, output):
    fine_t1, coarse_t1, coarse_t2 = _inputs(scene)
    return ["fuse", "--fine-t1", fine_t1, "--coarse-t1", coarse_t1, "--coarse-t2", coarse_t2,
            "--tile-size", str(TILE), "--output", str(output)]


def _stored(path):
    """The stored pixel values (not reflectance): equal arrays = bit-identical rasters."""
    return raster.open_dataset(str(path)).ReadAsArray()


@pytest.fixture(scope="module")
def in_process_output(small_scene, tmp_path_factory):
    output = tmp_path_factory.mktemp("in_process") / "fused.tif"
    assert cli.main(_cli_arguments(small_scene, output)) == 0
    return output


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as local, \
            distributed.Client(local) as dask_client:
        yield dask_client


def _leftovers(directory):
    return [name for name in os.listdir(directory) if name.startswith(".")]


def test_cli_local_cluster_is_bit_identical_to_in_process(small_scene, in_process_output,
                                                          tmp_path, capsys):
    output = tmp_path / "fused.tif"
    assert cli.main(_cli_arguments(small_scene, output) + ["--workers", "2"]) == 0
    assert "Dask cluster: 2 worker(s), 2 thread(s)" in capsys.readouterr().err
    reference = _stored(in_process_output)
    assert np.array_equal(_stored(output), reference)
    info, expected = raster.raster_info(str(output)), raster.raster_info(str(in_process_output))
    assert (info.gdal_type, info.nodata, info.scale) == \
        (expected.gdal_type, expected.nodata, expected.scale)
    assert (reference != expected.nodata[0]).mean() > 0.99      # really fused, not nodata
    assert _leftovers(tmp_path) == []


def test_a_killed_worker_still_gives_the_complete_output(small_scene, in_process_output,
                                                         client, tmp_path):
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    killed = []

    def kill_once_running(fraction):
        if fraction > 0.2 and not killed:       # past prepare: the first tile is written
            os.kill(victim, signal.SIGKILL)
            killed.append(fraction)

    output = tmp_path / "fused.tif"
    fusion.fuse_files(*_inputs(small_scene), str(output), tile_size=TILE,
                      progress=kill_once_running,
                      tile_map=functools.partial(cluster.map_tiles, client))
    assert killed and killed[0] < 1.0           # killed while tiles were still running
    assert np.array_equal(_stored(output), _stored(in_process_output))
    client.wait_for_workers(2, timeout=60)      # the nanny restarted it
    assert victim not in client.run(os.getpid).values()


def test_cancel_cancels_the_tasks_and_leaves_no_file(small_scene, client, tmp_path):
    written = []
    output = tmp_path / "fused.tif"
    with pytest.raises(tiling.Canceled):
        fusion.fuse_files(*_inputs(small_scene), str(output), tile_size=TILE,
                          progress=written.append, is_canceled=lambda: len(written) > 3,
                          tile_map=functools.partial(cluster.map_tiles, client))
    assert not output.exists() and _leftovers(tmp_path) == []
    deadline = time.time() + 30
    while client.processing() and any(client.processing().values()) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(client.processing().values())     # no task of the run left on a worker


def test_a_wrong_scheduler_address_fails_in_seconds(small_scene, tmp_path, capsys):
    output = tmp_path / "fused.tif"
    started = time.time()
    status = cli.main(_cli_arguments(small_scene, output) + ["--scheduler", "tcp://127.0.0.1:9"])
    assert time.time() - started < 10
    assert status == cli.EXIT_BAD_INPUT
    message = capsys.readouterr().err
    assert "--scheduler: no Dask scheduler answered at 'tcp://127.0.0.1:9'" in message
    assert not output.exists()
    with pytest.raises(InputError) as error:
        with cluster.dask_client("not-a-scheduler-address"):
            pass
    assert error.value.parameter == "SCHEDULER"


def test_a_scheduler_without_workers_is_refused_not_waited_for(tmp_path):
    """A real `dask scheduler` process with no worker (its own process: a scheduler on this
    process's event loop can stall under load)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", str(port), "--no-dashboard"], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        address = f"tcp://127.0.0.1:{port}"
        deadline = time.time() + 60
        while time.time() < deadline:           # until the scheduler listens
            with socket.socket() as attempt:
                if attempt.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        started = time.time()
        with pytest.raises(InputError) as error:
            with cluster.dask_client(address):
                pass
        assert time.time() - started < 15
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=30)
    assert "has no workers; start some with 'dask worker" in str(error.value)


def test_fuse_algorithm_sends_tiles_to_the_scheduler(small_scene, in_process_output, client,
                                                     stfusion_provider, tmp_path):
    import processing
    fine_t1, coarse_t1, coarse_t2 = _inputs(small_scene)
    output = tmp_path / "fused.tif"
    result = processing.run("stfusion:fuse", {
        "FINE_T1": fine_t1, "COARSE_T1": coarse_t1, "COARSE_T2": coarse_t2,
        "TILE_SIZE": TILE, "SCHEDULER": client.scheduler.address, "OUTPUT": str(output),
        "REPORT": str(tmp_path / "fused.html")})
    assert result["OUTPUT"] == str(output)
    assert np.array_equal(_stored(output), _stored(in_process_output))


def test_any_method_distributes_through_the_driver(small_scene, client, tmp_path):
    """STARFM, through methods.fuse_files: the same driver, the same bit-identical output."""
    outputs = {}
    for name, tile_map in (("here", None), ("cluster", functools.partial(cluster.map_tiles,
                                                                         client))):
        outputs[name] = tmp_path / f"starfm_{name}.tif"
        methods.fuse_files("starfm", starfm.StarfmParams(), *_inputs(small_scene),
                           str(outputs[name]), tile_size=TILE, tile_map=tile_map)
    assert np.array_equal(_stored(outputs["cluster"]), _stored(outputs["here"]))


def test_the_tile_work_is_sent_once_and_sources_reopen_on_the_workers(small_scene, client):
    """The per-tile work pickles without this process's callbacks and open datasets."""
    import pickle
    pairs, c2, _info = methods.open_inputs(*_inputs(small_scene))
    state = methods.prepare("starfm", pairs, c2, starfm.StarfmParams())
    halo = methods.method_of(state).halo(state)
    predictor = methods.TilePredictor(state, 1, halo, step=lambda: None,
                                      is_canceled=lambda: False)
    work = tiling.TileWork((*pairs[0], c2), predictor)
    copy = pickle.loads(pickle.dumps(work))
    assert copy.function.step is None and copy.function.is_canceled is None
    tile = tiling.Tile(64, 64, 64, 64, halo)
    expected = work(tile)
    assert np.array_equal(client.submit(cluster.compute_tile, work, tile).result(), expected,
                          equal_nan=True)
    assert np.isfinite(expected).mean() > 0.99


def test_a_series_on_the_cluster_is_bit_identical_to_in_process(sample_series, client,
                                                               tmp_path):
    """Four dates of the clouded sample season (two-pair fusion, cloud fallback to the next
    pair), several tiles a date: the command line in process and on the scheduler."""
    arguments = ["series", "--fine", *sample_series.fine.values(),
                 "--coarse", *sample_series.coarse.values(),
                 "--fine-masks", *sample_series.masks.values(),
                 "--target-dates", "2021-05-15/2021-05-27/4", "--tile-size", "48"]
    here, there = tmp_path / "here", tmp_path / "there"
    assert cli.main(arguments + ["--output-folder", str(here)]) == 0
    assert cli.main(arguments + ["--output-folder", str(there),
                                 "--scheduler", client.scheduler.address]) == 0
    dates = sorted(name for name in os.listdir(here) if name.endswith(".tif"))
    assert dates == [f"fused_2021-05-{day}.tif" for day in (15, 19, 23, 27)]
    assert dates == sorted(name for name in os.listdir(there) if name.endswith(".tif"))
    for name in dates:
        assert np.array_equal(_stored(there / name), _stored(here / name)), name
    assert (there / "fused_sources.csv").read_text() == (here / "fused_sources.csv").read_text()
    assert "2021-05-13 + 2021-05-25" in (here / "fused_sources.csv").read_text()
