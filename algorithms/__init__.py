"""One Processing algorithm per module; each module ends with ``ALGORITHM = TheClass``."""
import importlib

ALGORITHM_MODULES = ("prepare_landsat", "resample_modis", "resample_modis_series", "train",
                     "fuse", "fuse_series", "evaluate", "starfm", "fsdaf")


def algorithm_classes():
    """The algorithm classes, in Toolbox order (torch is not imported here)."""
    return [importlib.import_module(f".{name}", __name__).ALGORITHM
            for name in ALGORITHM_MODULES]
