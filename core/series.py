"""A dense fine-resolution time series: many target dates from a few fine/coarse pairs.

QGIS-free. The work is split so that any driver (this module's in-process ``run_series``, a
Dask driver) can run it, and it drives the fusion-method protocol (``core/methods.py``):

1. ``make_plan``: every target date with its candidates, best first: the two-pair fusion of
   the nearest usable pair before and after the date (both within ``max_gap_days``, their
   gaps ``balanced``), then each single pair within reach, nearest first (``Candidate``).
2. ``SeriesStates``: each pair's date-independent preparation (``methods.prepare_pair``: the
   default model's classes), once per pair whatever the number of dates that use it, when
   first needed; ``DateStates``: per date, the method state of each candidate from those
   (``methods.prepare_date``: the class changes towards the date's coarse image, no k-means),
   again only for the candidates some pixel needs.
3. ``predict_date_tile(task, states, tile)``: one tile of one date, a plain function of
   picklable arguments (``DateTask``: sources and candidates; ``states``: any mapping from
   candidate to method state, e.g. a dict). Per pixel the first candidate whose inputs are
   all clear there (fine image not masked or nodata, both coarse images valid) gives the
   value, so a pixel clouded in the nearest pair takes the next-nearest clear pair instead
   of nodata; pixels clear in no candidate are nodata. Each candidate is one
   ``predict_tile`` of its method.
4. ``write_dates``: the GeoTIFFs of a run of consecutive dates that share their pairs
   (``batches``), tile by tile, each tile of all of them at once (``predict_dates_tile``):
   each pair's arrays are read once per tile, and what the method computes from a pair
   alone over a tile (``methods.TileWindow.shared``: the default model's classes,
   homogeneity index, unmixing matrices, guided-filter set-up) is computed once for all
   the dates; each file atomic, all of the run published together.

Resume: ``<prefix>_series.json`` in the output folder records, per written date, a signature
of its inputs and settings and the file's size and time; a re-run skips a date whose file is
still the one recorded and whose signature has not changed.
"""
import contextlib
import datetime as dt
import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from . import acquisition, atomic, fusion, methods, raster, tiling
from . import scale_ratio as ratio_rule
from .errors import InputError
from .models import load_model

DEFAULT_MAX_GAP_DAYS = 64
TWO_PAIR_BALANCE = 3.0          # two pairs: the far one at most this many times as far
TWO_PAIR_MAX_GAP_DAYS = 32      # ... and at most this far (two Landsat revisits)
MANIFEST_VERSION = 2              # 2: sources with the pairs' trust
BATCH_DATES = 8                 # dates computed tile by tile together (``write_dates``)


@dataclass(frozen=True)
class Image:
    path: str
    date: dt.date


@dataclass(frozen=True)
class Pair:
    """A fine image and the coarse image of its date (``mask``: its cloud mask, 0 = clear)."""
    date: dt.date
    fine: str
    coarse: str
    mask: Optional[str] = None


@dataclass(frozen=True)
class Candidate:
    """One way to predict a date: fusion with one pair or two (indices into the plan's
    pairs, before then after), or ``copy``: the fine image of the date itself."""
    pairs: Tuple[int, ...]
    copy: bool = False


@dataclass(frozen=True)
class PlanEntry:
    date: dt.date
    coarse: str
    candidates: Tuple[Candidate, ...]


@dataclass
class SeriesPlan:
    pairs: List[Pair]
    entries: List[PlanEntry]
    skipped: List[Tuple[dt.date, str]] = field(default_factory=list)   # (date, why)

    def label(self, candidate: Candidate) -> str:
        """'2020-03-08 + 2020-04-02', '2020-03-17' or '2020-03-17 (fine image)'."""
        text = " + ".join(self.pairs[i].date.isoformat() for i in candidate.pairs)
        return text + " (fine image)" if candidate.copy else text

    def gap_days(self, entry: PlanEntry, candidate: Candidate) -> List[int]:
        return [(self.pairs[i].date - entry.date).days for i in candidate.pairs]

    def used_pairs(self, entries: Optional[Sequence[PlanEntry]] = None) -> List[int]:
        entries = self.entries if entries is None else entries
        return sorted({i for e in entries for c in e.candidates if not c.copy
                       for i in c.pairs})


# ----------------------------------------------------------------------------- plan

def covering_image(images: Sequence[Image], date: dt.date, period_days: int
                   ) -> Optional[Image]:
    """The image whose period [its date, its date + period_days) contains ``date`` (the
    latest if several do): a daily image of the same day, or the composite of that day."""
    covering = [im for im in images if 0 <= (date - im.date).days < max(1, period_days)]
    return max(covering, key=lambda im: im.date) if covering else None


def make_pairs(fine: Sequence[Image], coarse: Sequence[Image], masks: Dict[dt.date, str],
               period_days: int = 1) -> Tuple[List[Pair], List[Image]]:
    """Pairs of each fine image with the coarse image covering its date, by date; and the
    fine images that have no coarse image (unusable as pairs)."""
    pairs, unpaired = [], []
    for image in sorted(fine, key=lambda im: im.date):
        partner = covering_image(coarse, image.date, period_days)
        if partner is None:
            unpaired.append(image)
        else:
            pairs.append(Pair(image.date, image.path, partner.path, masks.get(image.date)))
    return pairs, unpaired


def balanced(gaps: Sequence[int]) -> bool:
    """Whether two pairs ``gaps`` days away (before and after) are worth fusing together: the
    farther at most ``TWO_PAIR_BALANCE`` times as far as the nearer and within
    ``TWO_PAIR_MAX_GAP_DAYS``. Otherwise the far pair's scene has changed more than the
    near pair's and pulls the two-pair result below the near pair alone (leave-dates-out on
    hubei_ndvi, ``benchmarks/series_accuracy.py``: 57 + 16 days and 39 + 57 days were worse
    than the nearest pair; 9 + 16, 16 + 23 and 23 + 9 days better)."""
    near, far = sorted(abs(g) for g in gaps)
    return far <= TWO_PAIR_MAX_GAP_DAYS and far <= TWO_PAIR_BALANCE * max(near, 1)


def candidates_for(date: dt.date, pairs: Sequence[Pair], max_gap_days: int,
                   exclude: Sequence[int] = ()) -> Tuple[Candidate, ...]:
    """Two-pair fusion with the nearest pair before and after (both within reach and
    ``balanced``), then every single pair within reach, nearest first (ties: the earlier
    one)."""
    near = [i for i, p in enumerate(pairs)
            if i not in exclude and abs((p.date - date).days) <= max_gap_days]
    before = [i for i in near if pairs[i].date < date]
    after = [i for i in near if pairs[i].date > date]
    ordered = sorted(near, key=lambda i: (abs((pairs[i].date - date).days), pairs[i].date))
    candidates = [Candidate((i,)) for i in ordered]
    if before and after and balanced([(pairs[i].date - date).days
                                      for i in (before[-1], after[0])]):
        candidates.insert(0, Candidate((before[-1], after[0])))
    return tuple(candidates)


FINE_DATES_SKIP, FINE_DATES_COPY, FINE_DATES_PREDICT = 0, 1, 2


def make_plan(fine: Sequence[Image], coarse: Sequence[Image], masks: Dict[dt.date, str],
              targets: Optional[Sequence[dt.date]] = None,
              max_gap_days: int = DEFAULT_MAX_GAP_DAYS, period_days: int = 1,
              fine_dates: int = FINE_DATES_SKIP) -> SeriesPlan:
    """Every target date (None: every coarse date) with its candidates.

    ``fine_dates``: what happens on a date that has a fine image: FINE_DATES_SKIP leaves it
    out, FINE_DATES_COPY writes the fine image with its masked pixels fused from the other
    pairs, FINE_DATES_PREDICT predicts it from the other pairs only (a validation)."""
    pairs, unpaired = make_pairs(fine, coarse, masks, period_days)
    plan = SeriesPlan(pairs, [], [(im.date, "fine image without a coarse image of its date")
                                  for im in unpaired])
    fine_by_date = {p.date: i for i, p in enumerate(pairs)}
    wanted = sorted(set(targets)) if targets is not None else sorted(im.date for im in coarse)
    for date in wanted:
        own = fine_by_date.get(date)
        if own is not None and fine_dates == FINE_DATES_SKIP:
            if targets is not None:
                plan.skipped.append((date, "has a fine image (INCLUDE_FINE_DATES is off)"))
            continue
        image = covering_image(coarse, date, period_days)
        if image is None:
            plan.skipped.append((date, "no coarse image of this date"))
            continue
        candidates = candidates_for(date, pairs, max_gap_days,
                                    exclude=() if own is None else (own,))
        if own is not None and fine_dates == FINE_DATES_COPY:
            candidates = (Candidate((own,), copy=True),) + candidates
        if not candidates:
            plan.skipped.append((date, f"no pair within {max_gap_days} days"))
            continue
        plan.entries.append(PlanEntry(date, image.path, candidates))
    return plan


# ----------------------------------------------------------------------------- prepare

@dataclass
class SeriesSettings:
    model_path: Optional[str] = None
    device: str = "cpu"
    tile_size: int = fusion.FUSE_TILE
    scale_ratio: Optional[float] = None


class SeriesStates:
    """The method of the model file and its settings, the pairs as sources (fine images
    with their masks) and each pair's preparation, made once when first needed
    (``prepare_all`` makes them all up front, e.g. before sending them to other processes);
    plus what every tile needs: the halo and the tile size."""

    def __init__(self, plan: SeriesPlan, info: raster.RasterInfo, settings: SeriesSettings,
                 log: Callable[[str], None] = lambda _m: None):
        self.plan, self.info, self.log = plan, info, log
        model, metadata = load_model(settings.model_path or fusion.default_model_path())
        rule = ratio_rule.resolve(plan.pairs[0].fine, [pair.coarse for pair in plan.pairs],
                                  settings.scale_ratio)
        log(rule.note)
        self.scale_ratio = rule.value
        self.method, self.settings = fusion.method_settings(
            model, metadata, info.band_count, self.scale_ratio, device=settings.device)
        self.tile_size = settings.tile_size
        self.halo: Optional[int] = None        # known with the first state
        self.prepared: Dict[int, object] = {}

    def sources(self, index: int) -> methods.Pair:
        """Pair ``index`` as (fine image NaN under its mask, coarse image) sources."""
        pair = self.plan.pairs[index]
        fine = raster.RasterSource(pair.fine)
        if pair.mask:
            fine = raster.MaskedSource(fine, raster.RasterSource(pair.mask, bands=[1]))
        return fine, raster.RasterSource(pair.coarse, date=pair.date)

    def pair(self, index: int, is_canceled=tiling.never_canceled):
        if index not in self.prepared:
            pair = self.plan.pairs[index]
            try:
                self.prepared[index] = methods.prepare_pair(self.method, self.sources(index),
                                                            self.settings, is_canceled)
            except ValueError as exc:
                raise InputError("FINE", f"the pair of {pair.date} ({pair.fine}) cannot be "
                                         f"used: {exc}; leave it out or check its mask.") \
                    from exc
            self.log(f"prepared the pair of {pair.date}")
        return self.prepared[index]

    def prepare_all(self, indices: Sequence[int], is_canceled=tiling.never_canceled) -> None:
        for index in indices:
            self.pair(index, is_canceled)

    def state(self, candidate: "Candidate", coarse_t2, is_canceled=tiling.never_canceled):
        """The method state of ``candidate``'s pairs for the coarse image ``coarse_t2``."""
        prepared = [self.pair(i, is_canceled) for i in candidate.pairs]
        state = methods.prepare_date(self.method, prepared,
                                     [self.sources(i) for i in candidate.pairs], coarse_t2,
                                     self.settings, is_canceled)
        if self.halo is None:
            module = methods.method_of(state)
            self.halo = module.halo(state)
            self.tile_size = tiling.whole_block_tile(self.tile_size,
                                                     module.tile_multiple(state))
        return state


class DateStates:
    """The method state of each candidate of one date, made when first asked for (a
    mapping candidate -> state for ``predict_date_tile``)."""

    def __init__(self, entry: PlanEntry, states: SeriesStates,
                 is_canceled: Callable[[], bool] = tiling.never_canceled):
        self.entry, self.states, self.is_canceled = entry, states, is_canceled
        self.coarse_t2 = raster.RasterSource(entry.coarse, date=entry.date)
        self._cache: Dict[Candidate, object] = {}

    def __getitem__(self, candidate: Candidate):
        """The state, or None when the candidate has no pixel valid in all its inputs."""
        if candidate not in self._cache:
            try:
                self._cache[candidate] = self.states.state(candidate, self.coarse_t2,
                                                           self.is_canceled)
            except ValueError:           # e.g. the pair is clear only where C2 is not
                self._cache[candidate] = None
        return self._cache[candidate]

    def made(self, candidate: Candidate):
        """The state of ``candidate`` if some tile needed it, else None."""
        return self._cache.get(candidate)


@dataclass
class DateTask:
    """What the tiles of one date read (picklable): the coarse image of the date, its
    candidates and the sources of the pairs they use."""
    coarse_t2: methods.Source
    candidates: Tuple[Candidate, ...]
    pairs: Dict[int, methods.Pair]


def date_task(entry: PlanEntry, states: SeriesStates) -> DateTask:
    used = sorted({i for c in entry.candidates for i in c.pairs})
    return DateTask(raster.RasterSource(entry.coarse, date=entry.date), entry.candidates,
                    {i: states.sources(i) for i in used})


# ----------------------------------------------------------------------------- predict

class PairWindows:
    """The pairs' arrays over one read window, each read when first needed, and the dict
    per pair in which a method keeps what it computed from the pair alone
    (``methods.TileWindow.shared``): one per tile, shared by the dates of a batch."""

    def __init__(self, window: Tuple[int, int, int, int]):
        self.window = window
        self._arrays: Dict[int, Tuple[np.ndarray, np.ndarray]] = {}
        self._shared: Dict[int, Dict] = {}

    def arrays(self, index: int, pair: methods.Pair) -> Tuple[np.ndarray, np.ndarray]:
        if index not in self._arrays:
            self._arrays[index] = tuple(source.window(*self.window) for source in pair)
        return self._arrays[index]

    def shared(self, index: int) -> Dict:
        return self._shared.setdefault(index, {})


def predict_date_tile(task: DateTask, states, tile: tiling.Tile,
                      is_canceled: Callable[[], bool] = tiling.never_canceled,
                      windows: Optional[PairWindows] = None
                      ) -> Tuple[np.ndarray, np.ndarray]:
    """One tile of one date: (prediction over the tile, NaN = nodata; pixels given by each
    candidate, in ``task.candidates`` order). ``states``: candidate -> method state. Each
    pixel takes the first candidate clear there; a candidate is only computed (and its
    state only asked for) when some pixel of the tile still needs it. ``windows``: the
    pairs' arrays of this tile (``PairWindows``) when other dates share them."""
    window = tile.read_window
    windows = windows or PairWindows(window)
    coarse_t2 = task.coarse_t2.window(*window)

    def arrays(index):
        return windows.arrays(index, task.pairs[index])

    # the tile's pixels only: the halo only serves the method as context
    reachable = raster.valid_mask(tile.crop(coarse_t2))
    result = np.full((coarse_t2.shape[0],) + reachable.shape, np.nan, np.float32)
    open_pixels = np.ones(reachable.shape, bool)
    counts = np.zeros(len(task.candidates), np.int64)
    for k, candidate in enumerate(task.candidates):
        if not (open_pixels & (reachable | candidate.copy)).any():
            break           # every pixel of the tile that any candidate can give is done
        if candidate.copy:
            values = arrays(candidate.pairs[0])[0]
        else:
            state = states[candidate]
            if state is None:
                continue
            tile_window = methods.TileWindow(
                [arrays(i) for i in candidate.pairs], coarse_t2, tile.halo,
                shared=[windows.shared(i) for i in candidate.pairs])
            values = methods.method_of(state).predict_tile(state, tile_window, is_canceled)
        values = tile.crop(values)
        take = open_pixels & raster.valid_mask(values)
        np.copyto(result, values, where=take)
        open_pixels &= ~take
        counts[k] = int(take.sum())
    return result, counts


def predict_dates_tile(tasks: Sequence[DateTask], states: Sequence, tile: tiling.Tile,
                       is_canceled: Callable[[], bool] = tiling.never_canceled,
                       lazy: bool = False) -> Iterable[Tuple[np.ndarray, np.ndarray]]:
    """One tile of several dates (``states``: each date's candidate -> state), the unit of
    work of ``write_dates``, a plain function of picklable arguments: ``predict_date_tile``
    of each date, with each pair's arrays read once and what the method computes from a
    pair alone (the classes, the homogeneity index, ...) shared by the dates that use it
    (``PairWindows``). ``lazy``: an iterator that computes each date when asked for it (in
    process: each date's tile is written before the next is computed), else a list."""
    windows = PairWindows(tile.read_window)
    results = (predict_date_tile(task, date_states, tile, is_canceled, windows)
               for task, date_states in zip(tasks, states))
    return results if lazy else list(results)


def batches(entries: Sequence[PlanEntry], size: int = BATCH_DATES) -> List[List[PlanEntry]]:
    """The dates in runs of at most ``size`` consecutive dates whose first candidates use
    at most two pairs in all (what one two-pair fusion reads: memory as for one date), each
    run computed tile by tile for all its dates at once (``write_dates``)."""
    runs: List[List[PlanEntry]] = []
    pairs: set = set()
    for entry in entries:
        first = set(entry.candidates[0].pairs)
        if runs and len(runs[-1]) < size and len(pairs | first) <= 2:
            runs[-1].append(entry)
            pairs |= first
        else:
            runs.append([entry])
            pairs = first
    return runs


def write_dates(entries: Sequence[PlanEntry], states: SeriesStates, outputs: Sequence[str],
                progress: Callable[[float], None] = tiling.no_progress,
                is_canceled: Callable[[], bool] = tiling.never_canceled,
                tile_map: Optional[tiling.TileMap] = None) -> List[List[Dict]]:
    """Write the GeoTIFF of each date of ``entries`` (encoded like the fine images, its date
    as ACQUISITIONDATE) into ``outputs``, tile by tile, each tile of all the dates at once
    (``predict_dates_tile``); each file atomically: all appear when the last tile is written, none
    on a cancel or error. Returns per date its sources: per candidate its pairs, their gaps
    in days, the pixels it gave and its pairs' trust (``source_trust``). ``tile_map``: who
    computes the tiles (``tiling.stream_tiles``; None = this process, where a candidate's
    state is only made when a tile needs it; else, e.g. Dask workers, every candidate's
    state is made here first and sent with the tiles' work)."""
    info, grid = states.info, states.info.grid
    tasks = [date_task(entry, states) for entry in entries]
    date_states = [DateStates(entry, states, is_canceled) for entry in entries]
    fused = next(((d, c) for e, d in zip(entries, date_states) for c in e.candidates
                  if not c.copy), None)
    if states.halo is None and fused is not None:     # the model's halo and tile size
        fused[0][fused[1]]
    if tile_map is None:
        work = functools.partial(predict_dates_tile, tasks, date_states,
                                 is_canceled=is_canceled, lazy=True)
    else:
        work = functools.partial(predict_dates_tile, tasks, [
            {c: d[c] for c in e.candidates if not c.copy}
            for e, d in zip(entries, date_states)])
    tile_size = states.tile_size
    tiles = list(tiling.iter_tiles(grid.width, grid.height, tile_size, states.halo or 0))
    counts = np.zeros((len(entries), max(len(e.candidates) for e in entries)), np.int64)
    block = tile_size if tile_size % tiling.OUTPUT_BLOCK_MULTIPLE == 0 else None
    with contextlib.ExitStack() as files:
        outs = [files.enter_context(raster.AtomicGeoTiff(
            output, grid, info.band_count, raster.OutputEncoding.like(info),
            info.band_names, block)) for output in outputs]
        for out, entry in zip(outs, entries):
            out.ds.SetMetadataItem(acquisition.METADATA_KEYS[0], entry.date.isoformat())

        def write(tile: tiling.Tile, results: Iterable[Tuple[np.ndarray, np.ndarray]]) -> None:
            for n, (out, (values, tile_counts)) in enumerate(zip(outs, results)):
                out.write(values, tile.x0, tile.y0)
                # written out now: GDAL would otherwise hold each open file's compressed
                # blocks (~50 MB per file for a 2000x2000x6 date; measured)
                out.ds.FlushCache()
                counts[n, :len(tile_counts)] += tile_counts

        tiling.stream_tiles(work, tiles, write, progress, is_canceled, tile_map)
    return [[{"pairs": states.plan.label(c), "gap_days": states.plan.gap_days(entry, c),
              "pixels": int(count), "trust": source_trust(d.made(c))}
             for c, count in zip(entry.candidates, row)]
            for entry, d, row in zip(entries, date_states, counts)]


def source_trust(state) -> List[Dict]:
    """Per pair of a candidate's state, what its trust rule measured (``core/trust.py``;
    means over bands): the pair's fine/coarse correlation at the coarse scale, the share of
    its fine structure still in the date's coarse image, its weight and why. Empty for a
    copied fine image, a candidate never computed, or a method without the trust rule."""
    return [{"correlation": round(float(np.mean(t.correlation)), 3),
             "temporal_ratio": round(float(np.mean(t.ratio)), 3), "weight": t.weight,
             "note": t.note} for t in getattr(state, "pair_trust", None) or []]


# ----------------------------------------------------------------------------- resume

def file_identity(path: Optional[str]) -> Optional[List]:
    """What tells a file apart from a changed one: absolute path, size, modification time."""
    if not path:
        return None
    stat = os.stat(path)
    return [os.path.abspath(path), stat.st_size, stat.st_mtime_ns]


def date_signature(plan: SeriesPlan, entry: PlanEntry, settings: Dict) -> str:
    """A hash of everything a date's output depends on: its coarse image, its candidates'
    files (fine, coarse, mask) and the settings."""
    candidates = [[c.copy] + [[file_identity(p.fine), file_identity(p.coarse),
                               file_identity(p.mask)]
                              for p in (plan.pairs[i] for i in c.pairs)]
                  for c in entry.candidates]
    text = json.dumps({"version": MANIFEST_VERSION, "coarse": file_identity(entry.coarse),
                       "candidates": candidates, "settings": settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class Manifest:
    """``<prefix>_series.json``: per written date its file, signature and sources."""

    def __init__(self, path: str):
        self.path = path
        self.dates: Dict[str, Dict] = {}
        if os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as stream:
                    content = json.load(stream)
                if content.get("version") == MANIFEST_VERSION:
                    self.dates = dict(content.get("dates", {}))
            except (OSError, ValueError):
                self.dates = {}          # unreadable: every date is written again

    def is_done(self, date: dt.date, output: str, signature: str) -> bool:
        record = self.dates.get(date.isoformat())
        if not record or record.get("signature") != signature or not os.path.exists(output):
            return False
        if file_identity(output)[1:] != record.get("file"):
            return False
        try:
            raster.raster_info(output)
        except raster.RasterError:
            return False
        return True

    def record(self, date: dt.date, output: str, signature: str, sources: List[Dict]) -> None:
        self.dates[date.isoformat()] = {"output": os.path.basename(output),
                                        "signature": signature,
                                        "file": file_identity(output)[1:],
                                        "sources": sources}
        atomic.write_text(self.path, json.dumps({"version": MANIFEST_VERSION,
                                                 "dates": self.dates}, indent=1,
                                                sort_keys=True))


# ----------------------------------------------------------------------------- driver

@dataclass
class SeriesResult:
    plan: SeriesPlan
    outputs: Dict[dt.date, str]          # every planned date's GeoTIFF
    written: List[dt.date]
    reused: List[dt.date]                # already written by an earlier run (resume)
    sources: Dict[dt.date, List[Dict]]   # per date: pairs, gap days, pixels per candidate
    manifest: str


def run_series(plan: SeriesPlan, info: raster.RasterInfo, settings: SeriesSettings,
               folder: str, prefix: str = "fused",
               progress: Callable[[float], None] = tiling.no_progress,
               is_canceled: Callable[[], bool] = tiling.never_canceled,
               log: Callable[[str], None] = lambda _m: None,
               tile_map: Optional[tiling.TileMap] = None,
               batch_dates: int = BATCH_DATES) -> SeriesResult:
    """Write every date of ``plan`` not already written (resume) into ``folder``, one
    atomic GeoTIFF per date, computed in runs of up to ``batch_dates`` dates (``batches``)
    and recorded in the manifest as soon as their run is complete: a cancel keeps the
    finished dates and leaves no partial file. ``tile_map``: who computes the tiles
    (``write_dates``; ``cluster.tile_map``: Dask workers, bit-identical)."""
    os.makedirs(folder, exist_ok=True)
    outputs = {e.date: acquisition.dated_path(folder, prefix, e.date) for e in plan.entries}
    manifest = Manifest(os.path.join(folder, f"{prefix}_series.json"))
    key = {"model": file_identity(settings.model_path or fusion.default_model_path()),
           "scale_ratio": settings.scale_ratio}
    signatures = {e.date: date_signature(plan, e, key) for e in plan.entries}
    todo = [e for e in plan.entries
            if not manifest.is_done(e.date, outputs[e.date], signatures[e.date])]
    reused = [e.date for e in plan.entries if e not in todo]
    if reused:
        log(f"{len(reused)} date(s) already written with the same inputs and settings: kept")
    written = []
    states = SeriesStates(plan, info, settings, log)
    for batch in batches(todo, batch_dates):
        def batch_progress(fraction, done=len(written), size=len(batch)):
            progress((done + fraction * size) / len(todo))
        files = [outputs[entry.date] for entry in batch]
        with atomic.published_at_once():      # finished dates stay, whatever comes next
            sources = write_dates(batch, states, files, batch_progress, is_canceled,
                                  tile_map)
            for entry, output, date_sources in zip(batch, files, sources):
                manifest.record(entry.date, output, signatures[entry.date], date_sources)
        for entry, date_sources in zip(batch, sources):
            written.append(entry.date)
            log(f"{entry.date}: " + "; ".join(f"{s['pairs']} {s['pixels']} px"
                                              for s in date_sources if s["pixels"]))
    progress(1.0)
    return SeriesResult(plan, outputs, written, reused,
                        {e.date: manifest.dates[e.date.isoformat()]["sources"]
                         for e in plan.entries}, manifest.path)
