"""Build the plugin zip for Plugins > Manage and Install Plugins > Install from ZIP.

Usage: python scripts/make_zip.py [OUTPUT]   (default build/stfusion.zip)

The zip holds the plugin's tracked files (no tests, benchmarks or scripts) under
``stfusion/``, and a README made of the user sections of README.md (installing, the
algorithms, headless use, where outputs go), so it names nothing the zip lacks and keeps
the algorithm anchors that the algorithms' help buttons open.
"""
import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_PATHS = ("metadata.txt", "__init__.py", "plugin.py", "gui", "algorithms", "core",
                "processing_provider", "model_weights", "resources", "LICENSE")
USER_SECTIONS = ("Install into desktop QGIS", "Algorithms", "Headless use", "Where outputs go")
ZIP_NOTE = ("This is the README shipped inside the plugin zip: the sections for users. The "
            "project's full README (tests, benchmarks, accuracy and speed tables) is in its "
            "source tree, which has no public home yet.")


def heading_anchor(heading: str) -> str:
    """The anchor GitHub and most Markdown viewers give a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def zip_readme(readme: str) -> str:
    """The title and introduction of ``readme``, a note, then its ``USER_SECTIONS``; links to
    sections left out become plain text."""
    parts = re.split(r"(?m)^(?=## )", readme)
    kept = [parts[0].rstrip() + "\n\n" + ZIP_NOTE + "\n"]
    kept += [part.rstrip() + "\n" for part in parts[1:]
             if part[3:].splitlines()[0].strip() in USER_SECTIONS]
    text = "\n".join(kept)
    anchors = {heading_anchor(h) for h in re.findall(r"(?m)^#+ (.+)$", text)}
    anchors |= set(re.findall(r'<a id="([^"]+)">', text))
    return re.sub(r"\[([^\]]+)\]\(#([^)]+)\)",
                  lambda link: link.group(0) if link.group(2) in anchors else link.group(1),
                  text)


def plugin_files(root: Path = ROOT):
    listed = subprocess.run(["git", "ls-files", "--", *PLUGIN_PATHS], cwd=root, check=True,
                            capture_output=True, text=True).stdout.split()
    return [name for name in listed if (root / name).is_file()]


def make_zip(output: Path, root: Path = ROOT) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in plugin_files(root):
            archive.write(root / name, f"stfusion/{name}")
        archive.writestr("stfusion/README.md",
                         zip_readme((root / "README.md").read_text(encoding="utf-8")))
    return output


if __name__ == "__main__":
    target = make_zip(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "stfusion.zip")
    print(f"{target}: install it with Plugins > Manage and Install Plugins > Install from ZIP")
