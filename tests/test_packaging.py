"""The plugin as the official repository and "Install from ZIP" see it."""
import configparser
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from make_zip import heading_anchor, make_zip  # noqa: E402


def metadata():
    parser = configparser.ConfigParser()
    parser.read(ROOT / "metadata.txt", encoding="utf-8")
    return parser["general"]


def test_metadata_is_fit_for_the_plugin_repository():
    general = metadata()
    text = (ROOT / "metadata.txt").read_text(encoding="utf-8")
    assert "example.org" not in text
    assert general["category"] == "Raster"
    assert general["icon"].endswith(".png")
    assert (ROOT / general["icon"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert general["version"] in general["changelog"]
    for field in ("name", "qgisMinimumVersion", "description", "about", "version", "author"):
        assert general[field].strip()


def test_licence_is_the_full_gpl_text():
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "GNU GENERAL PUBLIC LICENSE" in licence and "Version 2, June 1991" in licence
    assert "TERMS AND CONDITIONS FOR COPYING, DISTRIBUTION AND MODIFICATION" in licence
    assert "END OF TERMS AND CONDITIONS" in licence


def test_zip_holds_the_plugin_and_a_readme_naming_only_what_it_holds(tmp_path):
    archive = zipfile.ZipFile(make_zip(tmp_path / "stfusion.zip"))
    names = set(archive.namelist())
    for required in ("metadata.txt", "__init__.py", "plugin.py", "LICENSE", "README.md",
                     "model_weights/default.pt", metadata()["icon"]):
        assert f"stfusion/{required}" in names
    assert not any(n.startswith(("stfusion/tests/", "stfusion/benchmarks/")) for n in names)
    readme = archive.read("stfusion/README.md").decode("utf-8")
    assert "## Algorithms" in readme and "## Accuracy on real data" not in readme
    links = re.findall(r"\]\(([^)#]+)\)", readme)
    paths = [p for p in re.findall(r"`([\w.-]+/[\w./-]+)`", readme) if not p.startswith("/")]
    for path in links + paths:
        assert any(n == f"stfusion/{path}" or n.startswith(f"stfusion/{path}/") for n in names), \
            f"the zip README names {path}, which the zip lacks"
    anchors = {heading_anchor(h) for h in re.findall(r"(?m)^#+ (.+)$", readme)}
    anchors |= set(re.findall(r'<a id="([^"]+)">', readme))
    # links to sections the zip leaves out keep their text, without the link
    assert set(re.findall(r"\]\(#([^)]+)\)", readme)) <= anchors
    assert "(Dask, see Command line and cluster)" in readme
