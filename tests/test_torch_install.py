"""The PyTorch installer: QGIS's interpreter per OS, the pip command and constraints, and a
real install of a tiny wheel through the same code path (a QgsTask) into a temporary folder."""
import base64
import hashlib
import importlib
import sys
import time
import zipfile

import numpy
import pytest
from qgis.core import QgsApplication

from stfusion.core import torch_install
from stfusion.core.torch_install import InstallError, InstallPlan, qgis_python


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return str(path)


def test_linux_uses_sys_executable_when_it_is_a_python(tmp_path):
    python = touch(tmp_path / "venv" / "bin" / "python")
    assert qgis_python("linux", python, str(tmp_path / "usr"), (3, 11)) == python


def test_linux_inside_qgis_finds_the_python_beside_or_under_the_prefix(tmp_path):
    qgis = touch(tmp_path / "usr" / "bin" / "qgis")
    beside = touch(tmp_path / "usr" / "bin" / "python3.11")
    assert qgis_python("linux", qgis, str(tmp_path / "usr"), (3, 11)) == beside
    appimage = touch(tmp_path / "squashfs" / "AppRun")
    under_prefix = touch(tmp_path / "squashfs" / "usr" / "bin" / "python3")
    assert qgis_python("linux", appimage, str(tmp_path / "squashfs" / "usr"),
                       (3, 11)) == under_prefix


def test_windows_osgeo4w_prefers_its_python3_launcher_then_apps_python(tmp_path):
    root = tmp_path / "OSGeo4W"
    qgis = touch(root / "bin" / "qgis-bin.exe")
    prefix = str(root / "apps" / "Python312")
    apps_python = touch(root / "apps" / "Python312" / "python.exe")
    assert qgis_python("win32", qgis, prefix, (3, 12)) == apps_python
    launcher = touch(root / "bin" / "python3.exe")
    assert qgis_python("win32", qgis, prefix, (3, 12)) == launcher


def test_windows_standalone_finds_apps_python_without_the_prefix(tmp_path):
    root = tmp_path / "QGIS 3.34"
    qgis = touch(root / "bin" / "qgis-ltr-bin.exe")
    apps_python = touch(root / "apps" / "Python39" / "python.exe")
    assert qgis_python("win32", qgis, str(tmp_path / "elsewhere"), (3, 9)) == apps_python


def test_macos_app_bundle(tmp_path):
    contents = tmp_path / "QGIS.app" / "Contents"
    qgis = touch(contents / "MacOS" / "QGIS")
    framework = touch(contents / "Frameworks" / "Python.framework" / "Versions" / "3.10" /
                      "bin" / "python3")
    assert qgis_python("darwin", qgis, str(tmp_path / "nowhere"), (3, 10)) == framework
    bundled = touch(contents / "MacOS" / "bin" / "python3")
    assert qgis_python("darwin", qgis, str(tmp_path / "nowhere"), (3, 10)) == bundled


def test_no_interpreter_names_where_it_looked(tmp_path):
    with pytest.raises(InstallError, match="python3.exe"):
        qgis_python("win32", str(tmp_path / "bin" / "qgis-bin.exe"), str(tmp_path), (3, 12))


def test_cpu_or_cuda_build_per_platform():
    assert torch_install.torch_index("linux", cuda=False) == torch_install.CPU_INDEX
    assert torch_install.torch_index("linux", cuda=True) is None  # PyPI's Linux wheel has CUDA
    assert torch_install.torch_index("win32", cuda=True) == torch_install.CUDA_INDEX
    assert torch_install.torch_index("win32", cuda=False) is None
    assert torch_install.torch_index("darwin", cuda=False) is None
    assert torch_install.has_nvidia_gpu(which=lambda _name: None) is False


def test_constraints_pin_qgis_numpy_and_the_command_installs_into_the_private_folder(tmp_path):
    text = torch_install.constraints_text()
    assert f"numpy=={numpy.__version__}\n" in text
    from osgeo import gdal
    assert f"GDAL=={gdal.__version__}\n" in text
    folder = torch_install.private_folder(str(tmp_path), (3, 11))
    assert folder == str(tmp_path / "stfusion" / "python3.11")
    plan = InstallPlan("/usr/bin/python3", folder, index_url=torch_install.CPU_INDEX)
    command = plan.command()
    assert command[:4] == ["/usr/bin/python3", "-m", "pip", "install"]
    assert command[command.index("--target") + 1] == folder + ".partial"
    assert command[command.index("--constraint") + 1] == plan.constraints_path
    assert command[command.index("--index-url") + 1] == torch_install.CPU_INDEX
    assert command[-1] == torch_install.TORCH_REQUIREMENT


def tiny_wheel(folder, name="stfusion_probe", version="0.1"):
    """A minimal pure-Python wheel (a zip with the package and its dist-info)."""
    files = {f"{name}/__init__.py": "ANSWER = 42\n",
             f"{name}-{version}.dist-info/METADATA":
                 f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{name}-{version}.dist-info/WHEEL":
                 "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    def digest(text):
        return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).decode()

    record = "".join(f"{path},sha256={digest(text).rstrip('=')},{len(text)}\n"
                     for path, text in files.items()) + f"{name}-{version}.dist-info/RECORD,,\n"
    files[f"{name}-{version}.dist-info/RECORD"] = record
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def run_task(plan, qgis_app):
    from stfusion.gui.torch_installer import TorchInstallTask
    ended = []
    task = TorchInstallTask(plan, ended.append, constraints="")
    progress = []
    task.progressChanged.connect(progress.append)
    QgsApplication.taskManager().addTask(task)
    started = time.time()
    while not ended:
        qgis_app.processEvents()
        time.sleep(0.05)
        assert time.time() - started < 180, "the install task did not end"
    return task, progress


def test_real_install_of_a_tiny_wheel_through_the_task(qgis_app, tmp_path):
    wheels = tmp_path / "wheels"
    tiny_wheel(wheels)
    target = tmp_path / "profile" / "stfusion" / "python3"
    plan = InstallPlan(qgis_python(), str(target), requirements=["stfusion_probe==0.1"],
                       extra_args=["--no-index", "--find-links", str(wheels)])
    task, progress = run_task(plan, qgis_app)
    assert task.error == "" and "Successfully installed stfusion_probe-0.1" in task.output
    assert (target / "stfusion_probe" / "__init__.py").exists()
    assert not (target.parent / "python3.partial").exists() and progress[-1] == 100
    assert str(target) in sys.path  # added by the task when it succeeded
    try:
        assert importlib.import_module("stfusion_probe").ANSWER == 42
    finally:
        sys.path.remove(str(target))
        sys.modules.pop("stfusion_probe", None)


def test_failed_install_reports_pip_verbatim_and_leaves_the_target_alone(qgis_app, tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "kept.txt").write_text("an earlier install")
    plan = InstallPlan(qgis_python(), str(target), requirements=["stfusion_probe==9.9"],
                       extra_args=["--no-index", "--find-links", str(tmp_path)])
    task, _progress = run_task(plan, qgis_app)
    assert "No matching distribution found for stfusion_probe==9.9" in task.error
    assert (target / "kept.txt").read_text() == "an earlier install"
    assert not (tmp_path / "target.partial").exists()


def test_cancel_stops_pip_and_installs_nothing(tmp_path):
    tiny_wheel(tmp_path / "wheels")
    plan = InstallPlan(qgis_python(), str(tmp_path / "target"),
                       requirements=["stfusion_probe==0.1"],
                       extra_args=["--no-index", "--find-links", str(tmp_path / "wheels")])
    with pytest.raises(InstallError, match="Canceled; nothing was installed"):
        torch_install.run_pip(plan, is_canceled=lambda: True, constraints="")
    assert not (tmp_path / "target").exists() and not (tmp_path / "target.partial").exists()
