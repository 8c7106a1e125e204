"""Render resources/icon.svg to resources/icon.png (the plugin repository wants a PNG icon).

Usage: python scripts/render_icon.py   (QGIS's Qt, offscreen)
"""
from pathlib import Path

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QGuiApplication, QImage, QPainter
from qgis.PyQt.QtSvg import QSvgRenderer

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
SIZE = 128


def render(svg: Path, png: Path, size: int = SIZE) -> None:
    image = QImage(size, size, QImage.Format_ARGB32)
    image.fill(Qt.transparent)
    painter = QPainter(image)
    QSvgRenderer(str(svg)).render(painter)
    painter.end()
    if not image.save(str(png)):
        raise OSError(f"could not write {png}")


if __name__ == "__main__":
    application = QGuiApplication([])
    render(RESOURCES / "icon.svg", RESOURCES / "icon.png")
