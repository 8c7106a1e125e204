"""Small functions shared by the tests (importable because conftest puts tests/ on sys.path)."""
import hashlib

from osgeo import gdal


def checksum(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def shifted_copy(path, target, shift):
    """A copy of ``path`` whose geotransform is moved by ``shift`` (x, y) pixels."""
    ds = gdal.Translate(str(target), path)
    gt = list(ds.GetGeoTransform())
    gt[0] += shift[0] * gt[1] + shift[1] * gt[2]
    gt[3] += shift[0] * gt[4] + shift[1] * gt[5]
    ds.SetGeoTransform(gt)
    ds = None
    return str(target)


def qgis_process_in_profile(profile):
    """(qgis_process command, environment) for headless runs in a fresh profile with the
    plugin enabled."""
    import os
    import subprocess
    from test_qgis_process import ROOT, qgis_process_command
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(profile),
               QGIS_PLUGINPATH=str(ROOT / "build" / "plugins"))
    command = qgis_process_command()
    subprocess.run([command, "plugins", "enable", "stfusion"], env=env, capture_output=True,
                   timeout=300)
    return command, env


def qgis_process_json(profile, algorithm, *arguments):
    """``qgis_process run ALGORITHM --json -- ARGUMENTS`` in a fresh profile with the plugin
    enabled; returns the finished process (stdout holds the JSON on success)."""
    import subprocess
    command, env = qgis_process_in_profile(profile)
    return subprocess.run([command, "run", algorithm, "--json", "--", *arguments], env=env,
                          capture_output=True, text=True, timeout=300)
