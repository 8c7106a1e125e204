"""One Processing algorithm per module; each module defines exactly one algorithm class."""
import importlib

ALGORITHM_MODULES = ("resample_modis", "train", "fuse", "evaluate", "starfm", "fsdaf")


def algorithm_classes():
    """The algorithm classes of the modules that exist (torch is not imported here)."""
    classes = []
    for name in ALGORITHM_MODULES:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue
        classes.append(module.ALGORITHM)
    return classes
