"""What users read: help pages, tooltips, tags, help URLs and the Toolbox groups' order."""
import re
from urllib.parse import urlparse, unquote

import pytest
from qgis.core import QgsApplication

from stfusion.algorithms import algorithm_classes
from stfusion.algorithms.base import GROUPS

ALGORITHMS = [cls() for cls in algorithm_classes()]
for _algorithm in ALGORITHMS:
    _algorithm.initAlgorithm()


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.NAME)
def test_every_parameter_has_a_help_line_and_tooltip(algorithm):
    for definition in algorithm.parameterDefinitions():
        text = algorithm.PARAMETER_HELP.get(definition.name())
        assert text, f"{algorithm.NAME}: no PARAMETER_HELP line for {definition.name()}"
        assert text in definition.toolTip()
        assert f"<b>{definition.description()}</b>: {text}" in algorithm.shortHelpString()


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.NAME)
def test_help_is_paragraphs_not_wrapped_lines(algorithm):
    lines = algorithm.shortHelpString().split("\n")
    assert lines[0] == algorithm.shortDescription() and len(lines[0]) > 40
    for line in lines:
        # a hand-wrapped sentence leaves a line that ends mid-sentence
        assert re.search(r"[.)…]$", line), f"{algorithm.NAME}: line ends mid-sentence: {line!r}"
        assert not line.startswith(("FINE_T1", "COARSE_T", "OUTPUT:", "MODEL:"))


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.NAME)
def test_tags_short_description_and_help_url(algorithm):
    tags = [tag.lower() for tag in algorithm.tags()]
    assert {"spatiotemporal", "fusion", "landsat", "modis"} <= set(tags)
    assert algorithm.shortDescription() and algorithm.shortDescription() != algorithm.id()
    url = urlparse(algorithm.helpUrl())
    assert url.scheme == "file" and url.fragment == f"stfusion-{algorithm.NAME}"
    with open(unquote(url.path), encoding="utf-8") as readme:
        assert f'<a id="{url.fragment}"></a>' in readme.read()


def test_specific_tags_make_algorithms_findable():
    tags = {a.NAME: {t.lower() for t in a.tags()} for a in ALGORITHMS}
    assert "starfm" in tags["starfm"] and "fsdaf" in tags["fsdaf"]
    assert {"downscaling", "dcnn"} <= tags["fuse"]


def test_toolbox_shows_groups_in_workflow_order(stfusion_provider):
    from qgis.gui import QgsProcessingToolboxProxyModel
    model = QgsProcessingToolboxProxyModel(None, QgsApplication.processingRegistry())
    model.sort(0)
    provider_index = next(
        model.index(row, 0) for row in range(model.rowCount())
        if model.data(model.index(row, 0)) == stfusion_provider.name())
    groups = [model.data(model.index(row, 0, provider_index))
              for row in range(model.rowCount(provider_index))]
    workflow = [GROUPS[key] for key in ("workflows", "preparation", "fusion", "evaluation",
                                        "classic")]
    assert groups[:5] == workflow
    # the Toolbox sorts groups by name, whatever the order the provider adds them in
    assert sorted(workflow, key=str.lower) == workflow
