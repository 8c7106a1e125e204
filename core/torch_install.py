"""Installing PyTorch for QGIS's own Python into a folder private to the plugin.

QGIS-free, so every rule here is testable with faked paths. Inside QGIS ``sys.executable``
is often not a Python at all (the QGIS binary on Windows and macOS) or not the one QGIS
embeds (a pyenv shim on Linux), so a hint built from it installs torch where QGIS cannot
see it. ``qgis_python`` finds the interpreter per OS; ``InstallPlan`` is the pip command
that installs a pinned torch (CPU, or CUDA when ``nvidia-smi`` answers) with ``--target``
into a private folder, with a constraints file pinning QGIS's own numpy and GDAL; ``run_pip``
runs it with progress and cancel; ``add_to_sys_path`` makes the folder importable (after
the system's own packages, so QGIS's numpy and GDAL always win).
"""
import glob
import os
import queue
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

TORCH_REQUIREMENT = "torch==2.13.0"  # the version the project tests with (scripts/setup.sh)
# Linux wheels on PyPI bundle CUDA; PyTorch's CPU index has the small CPU-only Linux build.
# Windows wheels on PyPI are CPU-only; CUDA builds come from PyTorch's CUDA index.
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CUDA_INDEX = "https://download.pytorch.org/whl/cu128"
PINNED_DISTRIBUTIONS = ("numpy", "GDAL")  # QGIS's own: never replaced or shadowed
# pip's phases as (start of a line, progress fraction reached)
PIP_PHASES = (("Looking in", 0.02), ("Collecting", 0.05), ("Downloading", 0.1),
              ("Installing collected packages", 0.8), ("Successfully installed", 1.0))


class InstallError(Exception):
    """The installation failed; the message is pip's own output where there is one."""


def qgis_python(platform: str = sys.platform, executable: str = sys.executable,
                prefix: str = sys.prefix, version: Sequence[int] = sys.version_info[:2]
                ) -> str:
    """Path of the Python interpreter that QGIS embeds, or an InstallError saying where it
    was looked for. ``platform``: ``sys.platform``; ``executable``, ``prefix``: QGIS's
    ``sys.executable`` and ``sys.prefix``."""
    major, minor = version[:2]
    home = os.path.dirname(executable)
    if platform == "win32":
        root = os.path.dirname(home)  # <OSGeo4W or QGIS>\bin\qgis-bin.exe
        candidates = [os.path.join(root, "bin", "python3.exe"),
                      os.path.join(root, "bin", "python.exe"),
                      os.path.join(prefix, "python.exe")]
        candidates += sorted(glob.glob(os.path.join(root, "apps", f"Python{major}*",
                                                    "python.exe")), reverse=True)
    elif platform == "darwin":
        contents = os.path.dirname(home)  # QGIS.app/Contents/MacOS/QGIS
        frameworks = os.path.join(contents, "Frameworks", "Python.framework", "Versions")
        candidates = [os.path.join(home, "bin", f"python{major}.{minor}"),
                      os.path.join(home, "bin", f"python{major}"),
                      os.path.join(prefix, "bin", f"python{major}"),
                      os.path.join(frameworks, f"{major}.{minor}", "bin", f"python{major}"),
                      os.path.join(frameworks, "Current", "bin", f"python{major}")]
    else:
        candidates = [executable] if os.path.basename(executable).startswith("python") else []
        candidates += [os.path.join(home, f"python{major}.{minor}"),
                       os.path.join(prefix, "bin", f"python{major}.{minor}"),
                       os.path.join(prefix, "bin", f"python{major}")]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise InstallError("QGIS's Python interpreter was not found; looked for: "
                       + ", ".join(candidates))


def private_folder(settings_dir: str, version: Sequence[int] = sys.version_info[:2]) -> str:
    """The plugin's own package folder in a QGIS profile, one per Python version (wheels are
    built for one): ``<profile>/stfusion/python3.11``."""
    return os.path.join(settings_dir, "stfusion", f"python{version[0]}.{version[1]}")


def has_nvidia_gpu(which: Callable[[str], Optional[str]] = shutil.which) -> bool:
    """True when ``nvidia-smi`` exists and lists a GPU."""
    smi = which("nvidia-smi")
    if smi is None:
        return False
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return listed.returncode == 0 and "GPU" in listed.stdout


def torch_index(platform: str = sys.platform, cuda: bool = False) -> Optional[str]:
    """The package index of the right torch build (None: PyPI's own)."""
    if platform.startswith("linux"):
        return None if cuda else CPU_INDEX
    if platform == "win32" and cuda:
        return CUDA_INDEX
    return None  # Windows CPU and macOS (CPU/MPS) builds are PyPI's


def constraints_text(versions: Optional[dict] = None) -> str:
    """pip constraints pinning QGIS's own numpy and GDAL (``versions``: name -> version;
    default: the versions this Python has), so pip never pulls another one."""
    if versions is None:
        versions = installed_versions(PINNED_DISTRIBUTIONS)
    return "".join(f"{name}=={version}\n" for name, version in sorted(versions.items()))


def installed_versions(names: Sequence[str]) -> dict:
    from importlib import metadata
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


@dataclass
class InstallPlan:
    """One ``pip install --target``: what, from where, into which folder."""
    python: str
    target: str
    requirements: List[str] = field(default_factory=lambda: [TORCH_REQUIREMENT])
    index_url: Optional[str] = None
    extra_args: List[str] = field(default_factory=list)  # e.g. --no-index --find-links DIR
    cuda: bool = False  # the CUDA build (for the user's information: the index decides)

    @property
    def staging(self) -> str:
        """Where pip installs first; renamed to ``target`` only when pip succeeds."""
        return self.target + ".partial"

    @property
    def constraints_path(self) -> str:
        return self.target + ".constraints.txt"

    def command(self) -> List[str]:
        command = [self.python, "-m", "pip", "install", "--disable-pip-version-check",
                   "--no-input", "--progress-bar", "off", "--upgrade", "--target",
                   self.staging, "--constraint", self.constraints_path]
        if self.index_url:
            command += ["--index-url", self.index_url]
        return command + self.extra_args + self.requirements


    def manual_command(self) -> str:
        """The same installation typed by hand (straight into the target folder)."""
        index = f" --index-url {self.index_url}" if self.index_url else ""
        return (f'"{self.python}" -m pip install --target "{self.target}"{index} '
                + " ".join(self.requirements))


def torch_plan(settings_dir: str, cuda: Optional[bool] = None) -> InstallPlan:
    """The plan for this QGIS: its Python, its private folder, CPU or CUDA torch."""
    cuda = has_nvidia_gpu() if cuda is None else cuda
    return InstallPlan(qgis_python(), private_folder(settings_dir),
                       index_url=torch_index(sys.platform, cuda), cuda=cuda)


def phase_progress(line: str, current: float) -> float:
    """Progress after a line of pip's output (pip prints phases, not percentages)."""
    for start, fraction in PIP_PHASES:
        if line.startswith(start):
            return max(current, fraction)
    return current


def run_pip(plan: InstallPlan, progress: Callable[[float], None] = lambda _f: None,
            is_canceled: Callable[[], bool] = lambda: False,
            constraints: Optional[str] = None, poll_seconds: float = 0.2) -> str:
    """Run the plan: pip into the staging folder, then swap it in for the target (all or
    nothing). Returns pip's output; raises InstallError with pip's output verbatim when pip
    fails, or a sentence when canceled (the target is then left as it was)."""
    os.makedirs(os.path.dirname(plan.target) or ".", exist_ok=True)
    shutil.rmtree(plan.staging, ignore_errors=True)
    with open(plan.constraints_path, "w", encoding="utf-8") as stream:
        stream.write(constraints_text() if constraints is None else constraints)
    lines: List[str] = []
    try:
        code = _stream(plan.command(), lines, progress, is_canceled, poll_seconds)
    except OSError as exc:
        raise InstallError(f"cannot run {plan.python}: {exc}") from exc
    output = "".join(lines)
    if code is None:
        shutil.rmtree(plan.staging, ignore_errors=True)
        raise InstallError("Canceled; nothing was installed.")
    if code != 0:
        shutil.rmtree(plan.staging, ignore_errors=True)
        raise InstallError(output.strip() or f"pip exited with code {code}")
    _swap_in(plan.staging, plan.target)
    progress(1.0)
    return output


def _stream(command, lines, progress, is_canceled, poll_seconds) -> Optional[int]:
    """Run ``command``, collecting its output lines; None when canceled (it is stopped).
    A reader thread keeps cancel responsive while pip downloads silently."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, encoding="utf-8", errors="replace",
                               env=dict(os.environ, PYTHONNOUSERSITE="1"))
    received: "queue.Queue[Optional[str]]" = queue.Queue()

    def read() -> None:
        for output_line in process.stdout:
            received.put(output_line)
        received.put(None)  # end of output

    threading.Thread(target=read, daemon=True).start()
    fraction, finished = 0.0, False
    while not finished:
        if is_canceled():
            process.terminate()
            process.wait()
            return None
        try:
            line = received.get(timeout=poll_seconds)
        except queue.Empty:
            continue
        if line is None:
            finished = True
            continue
        lines.append(line)
        fraction = phase_progress(line, fraction)
        progress(min(fraction, 0.95))
    return process.wait()


def _swap_in(staging: str, target: str) -> None:
    previous = target + ".previous"
    shutil.rmtree(previous, ignore_errors=True)
    if os.path.exists(target):
        os.replace(target, previous)
    os.replace(staging, target)
    shutil.rmtree(previous, ignore_errors=True)


def add_to_sys_path(folder: str) -> bool:
    """Make the packages in ``folder`` importable, after the system's own (so QGIS's numpy
    and GDAL win); True when the folder exists."""
    if not os.path.isdir(folder):
        return False
    if folder not in sys.path:
        sys.path.append(folder)
        import importlib
        importlib.invalidate_caches()
    return True
