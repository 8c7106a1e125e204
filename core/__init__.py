"""QGIS-free numerics of stfusion: raster I/O, tiling, fusion models, metrics, reports."""
