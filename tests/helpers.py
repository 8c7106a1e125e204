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
