"""Outputs that appear whole or not at all: write beside the target, rename on success.

A single output (``atomic_output``, ``raster.AtomicGeoTiff``) is written into a hidden
temporary file in the target's folder and renamed into place when it is complete. Inside a
``run_outputs()`` block (one Processing run) the finished files are only *staged*: they are
all renamed together by ``RunOutputs.commit`` at the end of the run, or all removed if the
run fails or is cancelled, so a run's outputs appear all or none. While staged, a file is
read through its temporary path (``readable_path``), so a run can score or report on what it
has just written.

Temporary names carry the writing process's id (``.<name>.<pid>.<random><suffix>``): a
process killed outright (SIGKILL, power loss) cannot remove its temporary file, and the next
run on the same target removes such leftovers of dead processes (``remove_stale``).
"""
import glob
import itertools
import os
import re
import tempfile
import threading
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from .errors import InputError


def temporary_beside(path: str, suffix: str = ".part") -> str:
    """A new empty hidden file in the target's folder (same file system: rename is atomic).
    Leftovers of dead processes for the same target are removed first."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    remove_stale(path)
    handle, temp = tempfile.mkstemp(prefix=_prefix(path) + f"{os.getpid()}.", suffix=suffix,
                                    dir=directory)
    os.close(handle)
    return temp


def _prefix(path: str) -> str:
    return "." + os.path.basename(path) + "."


def remove_stale(path: str) -> List[str]:
    """Remove the temporary files of ``path`` left by processes that no longer run (a run
    killed with SIGKILL); returns the removed paths. Files of live processes are kept."""
    directory = os.path.dirname(os.path.abspath(path))
    prefix = _prefix(path)
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.[^/]*\.part")
    removed = []
    for candidate in glob.glob(os.path.join(glob.escape(directory), glob.escape(prefix) + "*")):
        match = pattern.match(os.path.basename(candidate))
        if match and not _process_alive(int(match.group(1))):
            discard(candidate)
            removed.append(candidate)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:     # another user's live process
        return True
    return True


def publish(temp: str, path: str) -> None:
    """Move a finished temporary file into place with the usual permissions (mkstemp's are
    private)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp, 0o666 & ~umask)
    os.replace(temp, path)


def discard(*paths: str) -> None:
    for leftover in paths:
        try:
            os.remove(leftover)
        except FileNotFoundError:
            pass


class RunOutputs:
    """The finished files of one run, waiting to be published together."""

    def __init__(self):
        self.staged: Dict[str, str] = {}     # target path -> temporary path

    def stage(self, temp: str, path: str) -> None:
        previous = self.staged.get(os.path.abspath(path))
        if previous and previous != temp:
            discard(previous)
        self.staged[os.path.abspath(path)] = temp

    def commit(self) -> None:
        """Rename every staged file into place, all or none: a file that was there before is
        kept aside until every rename has succeeded, and put back if one fails (e.g. a
        folder has appeared at a target). Renames in one folder need no space."""
        done = []                       # (target, the previous file kept aside or None)
        try:
            for path, temp in list(self.staged.items()):
                backup = None
                if os.path.isfile(path):
                    backup = temporary_beside(path, ".backup")
                    os.replace(path, backup)
                done.append((path, backup))
                publish(temp, path)
                del self.staged[path]
        except BaseException:
            for path, backup in reversed(done):
                if backup is not None:
                    os.replace(backup, path)
                elif path not in self.staged:
                    discard(path)
            raise
        discard(*(backup for _path, backup in done if backup is not None))

    def discard(self) -> None:
        discard(*self.staged.values())
        self.staged.clear()


_ACTIVE: Dict[int, RunOutputs] = {}      # thread id of the run -> its outputs
_LOCK = threading.Lock()


@contextmanager
def run_outputs() -> Iterator[RunOutputs]:
    """Stage every output finished inside the block (in this thread); the caller commits.
    Whatever is not committed when the block ends (error, cancel) is removed."""
    outputs = RunOutputs()
    with _LOCK:
        _ACTIVE[threading.get_ident()] = outputs
    try:
        yield outputs
    finally:
        with _LOCK:
            _ACTIVE.pop(threading.get_ident(), None)
        outputs.discard()


@contextmanager
def published_at_once() -> Iterator[None]:
    """Inside a run, publish the outputs finished in this block at once instead of staging
    them: for runs made of smaller complete units (a series' dates: a cancelled series keeps
    every finished date, each whole)."""
    key = threading.get_ident()
    with _LOCK:
        outputs = _ACTIVE.pop(key, None)
    try:
        yield
    finally:
        if outputs is not None:
            with _LOCK:
                _ACTIVE[key] = outputs


def finish(temp: str, path: str) -> None:
    """A complete temporary file: staged when a run is collecting outputs, else published."""
    with _LOCK:
        outputs = _ACTIVE.get(threading.get_ident())
    if outputs is None:
        publish(temp, path)
    else:
        outputs.stage(temp, path)


def readable_path(path: str) -> str:
    """Where to read ``path`` now: its staged temporary file while a run has written it but
    not yet committed it, else ``path`` itself (any thread, e.g. tile workers)."""
    if not isinstance(path, str) or not path:
        return path
    key = os.path.abspath(path)
    with _LOCK:
        for outputs in _ACTIVE.values():
            if key in outputs.staged:
                return outputs.staged[key]
    return path


@contextmanager
def atomic_output(path: str, suffix: str = ".part"):
    """Yield a temporary path; it replaces ``path`` if the block succeeds (or is staged, see
    ``finish``), else it is removed."""
    temp = temporary_beside(path, suffix)
    try:
        yield temp
    except BaseException:
        discard(temp)
        raise
    try:
        finish(temp, path)
    except BaseException:
        discard(temp)
        raise


def write_text(path: str, text: str) -> None:
    with atomic_output(path) as temp:
        with open(temp, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)


def same_file(a: str, b: str) -> bool:
    """Whether two paths name one file: the same inode (hard links, symlinks, a
    case-insensitive file system) or the same real path ignoring case."""
    try:
        if os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return os.path.realpath(a).casefold() == os.path.realpath(b).casefold()


def writable_folder_problem(path: str) -> Optional[str]:
    """Why a file cannot be created at ``path`` (None when it can): the nearest existing
    folder must be writable, and ``path`` must not be a folder."""
    target = os.path.abspath(path)
    if os.path.isdir(target):
        return f"'{target}' is a folder; give a file name"
    folder = os.path.dirname(target)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        return f"'{folder}' is a file, not a folder"
    try:        # really try: permissions alone miss read-only mounts and root's rights
        handle, probe = tempfile.mkstemp(prefix=".stfusion-write-test.", dir=folder)
    except OSError as exc:
        return f"the folder '{folder}' is not writable ({exc.strerror})"
    os.close(handle)
    os.remove(probe)
    return None


Named = Sequence[Tuple[str, str]]      # (parameter, path) pairs


def require_inputs_spared(targets: Sequence[str], inputs: Sequence[str],
                          parameter: str = "OUTPUT_FOLDER") -> None:
    """InputError naming ``parameter`` when a file the run names itself in that folder (a
    series' dated files: no parameter names them) is one of its ``inputs``."""
    for target, path in itertools.product(targets, inputs):
        if same_file(target, path):
            raise InputError(parameter, f"writing '{target}' would replace the input "
                                        f"'{path}'; inputs are never overwritten. Choose "
                                        "another folder or PREFIX.")


def outputs_problem(outputs: Named, inputs: Named, given: Named = (),
                    geotiffs: Sequence[str] = (), folders: Sequence[str] = ()
                    ) -> Optional[InputError]:
    """Why a run's outputs cannot be written as given (None when they can), the rules of
    every run (Processing and the command line): an output that is an input of the run (also
    through a link or another case), two outputs on one file, a GeoTIFF output not named
    .tif, or a folder that cannot be written. ``outputs``: every file the run writes (a
    report's sidecars included); ``given``: the destination paths as given (a report's own
    path); ``inputs``: the files it reads; ``geotiffs``: the parameters that write rasters;
    ``folders``: those that name a folder to write files into."""
    for (name, path), (input_name, input_path) in itertools.product([*given, *outputs],
                                                                     inputs):
        if same_file(path, input_path):
            return InputError(name, f"'{path}' is the file of input {input_name} "
                                    f"('{input_path}'); inputs are never overwritten. Choose "
                                    f"another file for {name}.")
    for (name, path), (other, other_path) in itertools.chain(
            itertools.combinations(given, 2), itertools.combinations(outputs, 2)):
        if name != other and same_file(path, other_path):
            return InputError(None, f"Parameters {name} and {other} both write '{path}'; "
                                    "give each output its own file.")
    for name, path in outputs:
        if name in geotiffs and os.path.splitext(path)[1].lower() not in (".tif", ".tiff"):
            return InputError(name, f"'{os.path.basename(path)}' does not name a GeoTIFF; "
                                    "stfusion writes GeoTIFF rasters, give a file name ending "
                                    "in .tif.")
        if name in folders:
            path = os.path.join(path, "file")   # a file in it: the folder may exist
        problem = writable_folder_problem(path)
        if problem:
            return InputError(name, f"cannot write '{path}': {problem}; choose a folder you "
                                    "can write to.")
    return None
