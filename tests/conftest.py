"""Shared fixtures: the package on sys.path as ``stfusion`` and the built-in sample scene."""
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "build" / "plugins"
PLUGINS.mkdir(parents=True, exist_ok=True)
if not (PLUGINS / "stfusion").exists():
    os.symlink(ROOT, PLUGINS / "stfusion")
for path in (PLUGINS, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def sample_scene(tmp_path_factory):
    """The built-in simulated scene (480 x 480 fine pixels), made once per test session."""
    from stfusion.core.sample_scene import make_sample_scene
    return make_sample_scene(str(tmp_path_factory.mktemp("sample_scene")), size=480)


@pytest.fixture(scope="session")
def small_scene(tmp_path_factory):
    """A 160 x 160 version of the sample scene for quick tests."""
    from stfusion.core.sample_scene import make_sample_scene
    return make_sample_scene(str(tmp_path_factory.mktemp("small_scene")), size=160)


@pytest.fixture(scope="session")
def shared_data():
    """../shared/data with the real Landsat/MODIS sets; tests using it skip without it."""
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


_REGISTERED = []  # Python must keep providers alive, as the plugin does with self.provider


@pytest.fixture
def stfusion_provider(qgis_app, qgis_processing):
    """Processing initialised (pytest-qgis) with the stfusion provider registered (again, if a
    test unloaded the plugin)."""
    from qgis.core import QgsApplication
    from stfusion.processing_provider.provider import StfusionProvider
    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("stfusion")
    if provider is None:
        provider = StfusionProvider()
        registry.addProvider(provider)
        _REGISTERED.append(provider)
    return provider


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory):
    """A 64 x 64 version of the sample scene for training tests."""
    from stfusion.core.sample_scene import make_sample_scene
    return make_sample_scene(str(tmp_path_factory.mktemp("tiny_scene")), size=64)


@pytest.fixture(scope="session")
def sample_series(tmp_path_factory):
    """The sample scene as a season (core.sample_scene.make_sample_series): 30 coarse dates
    2 days apart, 6 fine dates (2021-05-01, 05-13, 05-25, 06-06, 06-18, 06-28), the 2nd,
    4th and 5th partly clouded, with masks."""
    from stfusion.core.sample_scene import make_sample_series
    return make_sample_series(str(tmp_path_factory.mktemp("sample_series")), size=96)
