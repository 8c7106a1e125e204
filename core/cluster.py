"""The tiles of the one driver (``methods.predict``) computed on a Dask cluster.

``tile_map`` gives the driver a ``tiling.TileMap`` that sends the run's tile work (a
``tiling.TileWork``: the method's state in a ``methods.TilePredictor``, small and picklable,
and the input sources, which reopen their paths on the workers) to every worker once
(``scatter``), then submits one task per tile that reads the tile's windows there and
returns the tile. The driver writes the tiles as they come back into its ``AtomicGeoTiff``
here, so the output appears complete or not at all, exactly as in process. The inputs must
be paths every worker can open: a shared file system, or anything GDAL opens (``/vsicurl/``,
``/vsis3/`` COGs).

At most ``IN_FLIGHT_PER_THREAD`` tasks per worker thread are in flight, so memory is bounded
by the tile size on both sides. Dask re-runs the tasks of a worker that dies, a task that
fails is retried ``TASK_RETRIES`` times, and a cancel (callback or Ctrl-C) cancels the tasks
not yet done; the driver then removes its partial file.

Without a scheduler or workers none of this runs: the driver computes the tiles in process.
"""
import sys
import time
import uuid
from contextlib import contextmanager
from functools import partial
from typing import Any, Callable, Iterator, Optional, Sequence, Tuple

from . import tiling
from .errors import InputError

CONNECT_TIMEOUT_S = 5         # a wrong scheduler address fails this fast
TASK_RETRIES = 3
IN_FLIGHT_PER_THREAD = 2      # one tile computing, one queued, per worker thread
POLL_S = 0.02                 # how often finished tiles and a cancel are looked for


def require_distributed():
    """The ``distributed`` module, or an InputError saying how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise InputError("SCHEDULER", "running on a Dask cluster needs the packages dask and "
                         f"distributed in this Python: '{sys.executable} -m pip install dask "
                         "distributed' (the versions the workers run).") from exc
    return distributed


@contextmanager
def dask_client(scheduler: str = "", workers: int = 0):
    """A Dask client of the scheduler at ``scheduler``, or else of a new local cluster of
    ``workers`` single-threaded worker processes (closed on exit)."""
    distributed = require_distributed()
    if scheduler:
        with connect(distributed, scheduler) as client:
            yield client
        return
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        yield client


def connect(distributed, address: str):
    """A client of the scheduler at ``address`` that has workers, or an InputError within
    about ``2 * CONNECT_TIMEOUT_S`` seconds saying what to check."""
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError("SCHEDULER", f"no Dask scheduler answered at '{address}' within "
                         f"{CONNECT_TIMEOUT_S} s ({exc}). Check the address (e.g. "
                         "tcp://host:8786), start a scheduler ('dask scheduler') and workers "
                         "('dask worker ADDRESS'), or leave it empty to run in this "
                         "process.") from exc
    try:        # a scheduler without workers would queue the tiles for ever
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
    except TimeoutError as exc:
        client.close(timeout=CONNECT_TIMEOUT_S)
        raise InputError("SCHEDULER", f"the Dask scheduler at '{address}' has no workers; "
                         f"start some with 'dask worker {address}'.") from exc
    return client


@contextmanager
def tile_map(scheduler: str = "", workers: int = 0,
             log: Optional[Callable[[str], None]] = None
             ) -> Iterator[Optional[tiling.TileMap]]:
    """The driver's ``tile_map`` for as long as the context lasts: None (this process) when
    neither ``scheduler`` nor ``workers`` is given, else one computing the tiles on that
    cluster (``dask_client``)."""
    if not scheduler and not workers:
        yield None
        return
    with dask_client(scheduler, workers) as client:
        if log:
            log(f"Dask cluster: {describe(client)}")
        yield partial(map_tiles, client)


def describe(client) -> str:
    threads = client.nthreads()
    return (f"{len(threads)} worker(s), {sum(threads.values())} thread(s), scheduler "
            f"{client.scheduler.address}")


def compute_tile(work: Callable[[tiling.Tile], Any], tile: tiling.Tile) -> Any:
    """The task of one tile on a worker: read and computed as in process."""
    tiling.tune_allocator_for_tiles()
    with tiling.streaming_gdal_settings():
        values = work(tile)
    tiling.release_free_memory()
    return values


def map_tiles(client, work: Callable[[tiling.Tile], Any], tiles: Sequence[tiling.Tile],
              is_canceled: Callable[[], bool] = tiling.never_canceled,
              max_in_flight: int = 0) -> Iterator[Tuple[tiling.Tile, Any]]:
    """``tiling.TileMap`` on the cluster of ``client``: ``work`` scattered to every worker
    once, one task per tile, (tile, values) as they finish. ``max_in_flight``: tasks
    submitted but not yet returned (0 = ``IN_FLIGHT_PER_THREAD`` per worker thread).
    Closing the iterator early (an error, a cancel) cancels the tasks still running."""
    limit = max_in_flight or IN_FLIGHT_PER_THREAD * max(1, sum(client.nthreads().values()))
    shared = client.scatter(work, broadcast=True, hash=False)
    pending = iter(tiles)
    in_flight = {}                     # future -> its tile
    run_id = uuid.uuid4().hex[:8]

    def refill() -> None:
        while len(in_flight) < limit:
            tile = next(pending, None)
            if tile is None:
                return
            future = client.submit(compute_tile, shared, tile, retries=TASK_RETRIES,
                                   key=f"stfusion-tile-{run_id}-{tile.y0}-{tile.x0}",
                                   pure=False)
            in_flight[future] = tile

    try:
        refill()
        while in_flight:
            tiling.check_canceled(is_canceled)
            # polled, not distributed.wait(timeout=): its TimeoutError's traceback would tie
            # this frame (the sources, their open files) into garbage kept until exit
            finished = [future for future in in_flight if future.done()]
            if not finished:
                time.sleep(POLL_S)
            for future in finished:
                tile = in_flight.pop(future)
                values = future.result()
                future.release()
                yield tile, values
            refill()
    finally:                           # done, failed, canceled or closed early
        client.cancel(list(in_flight) + [shared])
