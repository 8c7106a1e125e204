"""The provider inside a QGIS application: id, name, icon and its algorithms."""
from stfusion.algorithms import ALGORITHM_MODULES, algorithm_classes
from stfusion.processing_provider.provider import workflow_models


def test_provider_lists_every_algorithm(stfusion_provider):
    assert stfusion_provider.id() == "stfusion"
    assert "fusion" in stfusion_provider.name().lower()
    assert not stfusion_provider.icon().isNull()
    ids = sorted(a.id() for a in stfusion_provider.algorithms())
    models = [f"stfusion:{model.name()}" for model in workflow_models()]
    assert ids == sorted([f"stfusion:{cls.NAME}" for cls in algorithm_classes()] + models)
    assert len(ids) == len(ALGORITHM_MODULES) + len(models) and models
