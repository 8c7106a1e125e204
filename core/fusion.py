"""Fusion with a model file: the default model (``core/stfnet.py``) or the paper's DCNN
(``core/paper_dcnn.py``), both fusion methods of ``core.methods``.

This layer holds what is about model files rather than any one method: which model to use
(the shipped ``model_weights/default.pt``, a file from stfusion:train, or the paper's DCNN
trained at fuse time), fine-tuning on the given pair(s) (``adapt``), the method settings
from the model's metadata (``prepare``) and the GeoTIFF run with its summary
(``fuse_files``). The maths of each model is in its method module.
"""
import os
import time
from typing import Callable, Dict, Optional, Sequence

from . import methods, paper_dcnn, raster, stfnet, stfnet_fields, tiling, training
from . import scale_ratio as ratio_rule
from .errors import InputError
from .models import DEFAULT_ARCHITECTURE, build_model, load_model, resolve_architecture
from .torch_check import require_torch

DEFAULT_MODEL_FILE = "default.pt"
PAPER_FUSE_EPOCHS = 50        # Table 1
# tile side of fuse_files: larger tiles waste less work on the halo (64 px for 480 m on 30 m);
# 640 px keeps the peak memory of a one-pair fuse at 0.76-0.85 GB whatever the raster size
# (torch included; 896 px: 1.01-1.09 GB for ~5 % less time, benchmarks/speed_memory.py)
FUSE_TILE = 640


def default_model_path() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "model_weights", DEFAULT_MODEL_FILE)


def physics_options(metadata: Dict, **options) -> Dict:
    """The default model's physics options: defaults < the model file's < ``options``."""
    opts = dict(stfnet.PHYSICS_DEFAULTS)
    opts.update(metadata.get("fusion_options", {}))
    opts.update(options)
    return opts


def prepare(model, metadata: Optional[Dict], pairs: Sequence, coarse_t2,
            scale_ratio: float = 16.0, use_cnn: Optional[bool] = None, seed: int = 0,
            device: str = "cpu", log: Optional[Callable[[str], None]] = None,
            progress: Callable[[float], None] = tiling.no_progress,
            is_canceled: Callable[[], bool] = tiling.never_canceled, use_trust: bool = True,
            uncertainty: bool = False, **options):
    """The method state of a model (``models.load_model``'s ``(model, metadata)``; model
    None: an untrained one of ``metadata['architecture']``) for ``pairs`` ((fine, coarse)
    arrays, paths or sources) and ``coarse_t2``. ``use_trust`` and ``uncertainty``: the
    default model's trust rule and expected-error layer (``core/trust.py``)."""
    pairs = [(methods.as_source(f), methods.as_source(c)) for f, c in pairs]
    coarse_t2 = methods.as_source(coarse_t2)
    band_count = pairs[0][0].band_count
    if any(s.band_count != band_count for pair in pairs for s in pair) or \
            coarse_t2.band_count != band_count:
        raise ValueError("all inputs need the same number of bands")
    name, settings = method_settings(model, metadata, band_count, scale_ratio, use_cnn, seed,
                                     device, use_trust, uncertainty, **options)
    return methods.method(name).prepare(pairs, coarse_t2, settings, progress=progress,
                                        is_canceled=is_canceled, log=log)


def method_settings(model, metadata: Optional[Dict], band_count: int,
                    scale_ratio: float = 16.0, use_cnn: Optional[bool] = None, seed: int = 0,
                    device: str = "cpu", use_trust: bool = True, uncertainty: bool = False,
                    **options):
    """(method name, its settings) of a model (None: an untrained one of
    ``metadata['architecture']``) for images of ``band_count`` bands (``use_trust``,
    ``uncertainty``: see ``prepare``)."""
    require_torch()
    metadata = dict(metadata or {})
    architecture = resolve_architecture(metadata.get("architecture", DEFAULT_ARCHITECTURE))
    if model is None:
        model = build_model(architecture, band_count, **metadata.get("options", {}))
    if architecture == "paper":
        if metadata.get("trained") and \
                int(metadata.get("band_count") or band_count) != band_count:
            raise InputError("MODEL", f"this paper model was trained on "
                                      f"{metadata.get('band_count')} bands but the inputs have "
                                      f"{band_count}; give a model trained on these bands "
                                      "(stfusion:train) or leave MODEL empty.")
        check_uncertainty(architecture, uncertainty)
        return architecture, paper_dcnn.PaperSettings(model, float(scale_ratio), str(device))
    if use_cnn is None:
        use_cnn = bool(metadata.get("use_cnn_by_default", metadata.get("trained", False)))
    return architecture, stfnet.StfnetSettings(model, float(scale_ratio), use_cnn,
                                               physics_options(metadata, **options), seed,
                                               str(device), use_trust, uncertainty)


def check_uncertainty(architecture: str, uncertainty) -> None:
    """``InputError`` when an expected-error layer is asked of a model that has none."""
    if uncertainty and resolve_architecture(architecture) == "paper":
        raise InputError("UNCERTAINTY", "the expected error is estimated for the default "
                                        "model only: leave it empty with the paper model")


def adapt(model, metadata: Dict, pairs: Sequence, epochs: int, scale_ratio: float,
          seed: int = 0, device: str = "cpu",
          progress: Callable[[float], None] = tiling.no_progress,
          is_canceled: Callable[[], bool] = tiling.never_canceled):
    """Fuse-time training on the given pair(s) (sources): the paper's DCNN learns coarse ->
    fine on each pair (a fresh network unless the model is trained); the default model needs
    two pairs and fine-tunes on t1 -> t3 and t3 -> t1 (one pair: InputError). Reads at most
    ``tiling.SAMPLE_MAX_WINDOWS`` windows of each image. Returns ``(model, metadata,
    use_cnn)``: ``use_cnn`` True once the default model's CNN is fine-tuned, else None (as
    the model file says)."""
    metadata = dict(metadata)
    architecture = resolve_architecture(metadata.get("architecture", DEFAULT_ARCHITECTURE))
    if architecture == "stfnet" and len(pairs) < 2:
        raise InputError("ADAPT", "fine-tuning the default model learns from how the scene "
                                  "changes between two pairs; give FINE_T3 and COARSE_T3, "
                                  "set ADAPT to 0, or choose ARCHITECTURE paper (which "
                                  "fine-tunes on one pair).")
    block = max(1, int(round(scale_ratio)))
    fine = pairs[0][0]
    windows = tiling.sample_windows((fine.height, fine.width),
                                    align=stfnet_fields.alignment(block))

    def read(source):
        tiling.check_canceled(is_canceled)
        return [source.window(x0, y0, w, h) for (y0, x0, h, w) in windows]

    pair_windows = [(read(f), read(c)) for f, c in pairs]
    use_cnn = None
    if architecture == "paper":
        examples = [p for f, c in pair_windows for p in zip(f, c)]
        initial = model if metadata.get("trained") else None
        model, history = training.train(examples, "paper", epochs=epochs, seed=seed,
                                        initial_model=initial, progress=progress,
                                        is_canceled=is_canceled, device=device)
        metadata.update(trained=True, band_count=fine.band_count,
                        fuse_time_training={"epochs": epochs,
                                            "final_train_loss": history["train_loss"][-1]})
    else:
        (f1, c1), (f3, c3) = pair_windows
        scenes = [[(a, b), (c, d)] for a, b, c, d in zip(f1, c1, f3, c3)]
        model, _ = training.train(scenes, "stfnet", epochs=epochs, seed=seed,
                                  initial_model=model, scale_ratio=scale_ratio,
                                  progress=progress, is_canceled=is_canceled, device=device,
                                  **physics_options(metadata))
        use_cnn = True
    return model, metadata, use_cnn


def check_data(pairs: Sequence, coarse_t2, align: int = 1,
               is_canceled: Callable[[], bool] = tiling.never_canceled) -> None:
    """``InputError`` unless every input holds data and they overlap (``raster.DataCheck``),
    from the sample windows (``tiling.sample_windows``) up to the first that shows it."""
    sources = [source for pair in pairs for source in pair] + [coarse_t2]
    data = raster.DataCheck(methods.input_names(len(pairs)))
    for (y0, x0, h, w) in tiling.sample_windows((coarse_t2.height, coarse_t2.width),
                                                align=align):
        tiling.check_canceled(is_canceled)
        data.add(*(source.window(x0, y0, w, h) for source in sources))
        if data.common:
            break
    data.check()


def fuse_files(fine_t1: str, coarse_t1: str, coarse_t2: str, output: str,
               fine_t3: Optional[str] = None, coarse_t3: Optional[str] = None,
               model_path: Optional[str] = None, architecture: Optional[str] = None,
               adapt_epochs: int = 0, device: str = "cpu",
               tile_size: int = FUSE_TILE, scale_ratio: Optional[float] = None,
               progress: Optional[Callable[[float], None]] = None,
               is_canceled: Optional[Callable[[], bool]] = None,
               log: Optional[Callable[[str], None]] = None,
               use_cnn: Optional[bool] = None, uncertainty: Optional[str] = None,
               use_trust: bool = True, tile_map: Optional[tiling.TileMap] = None) -> Dict:
    """Fuse GeoTIFFs block by block into ``output`` (encoded like ``fine_t1``).

    ``uncertainty``: also write the expected absolute error per pixel and band there
    (default model; same grid, encoding and nodata as ``output``; both appear or neither).
    ``use_trust``: the default model's pair consistency and temporal trust
    (``core/trust.py``). ``scale_ratio`` None or 0: by the rule of ``core.scale_ratio``.

    ``model_path`` None: ``architecture`` None or "default"/"stfnet" uses the shipped
    ``model_weights/default.pt``; "paper" trains the paper's DCNN at fuse time on the given
    pair(s) (``adapt_epochs`` epochs, Table 1's 50 when 0) then applies HPM (+ weighting).
    The prepare pass reads at most ``tiling.SAMPLE_MAX_WINDOWS`` windows of
    ``tiling.SAMPLE_WINDOW`` pixels (the whole image when small), so memory depends on the
    tile size only. ``device``: 'cpu' or 'cuda' (the networks and the stfnet tile arithmetic
    run there). ``tile_map``: who computes the tiles (``methods.predict``: None = this
    process, ``cluster.tile_map`` = Dask workers). Returns a summary: architecture,
    cnn_used, scale_ratio (and where it came from), the trust in each pair, seconds, tiles,
    model metadata.
    """
    started = time.time()
    progress = progress or tiling.no_progress
    is_canceled = is_canceled or tiling.never_canceled
    say = log or (lambda _m: None)
    pairs, c2, info = methods.open_inputs(fine_t1, coarse_t1, coarse_t2, fine_t3, coarse_t3)
    wanted = resolve_architecture(architecture) if architecture else None
    if model_path is None and wanted == "paper":
        model, meta = None, {"architecture": "paper", "band_count": info.band_count,
                             "trained": False}
        adapt_epochs = adapt_epochs or PAPER_FUSE_EPOCHS
        say(f"paper DCNN: training at fuse time for {adapt_epochs} epochs (Table 1)")
    else:
        model, meta = load_model(model_path or default_model_path())
        if wanted and meta["architecture"] != wanted:
            raise ValueError(f"the model file is a '{meta['architecture']}' model, "
                             f"'{wanted}' was asked for")
    rule = ratio_rule.resolve(fine_t1, [coarse_t1, coarse_t2, coarse_t3], scale_ratio)
    ratio = rule.value
    say(rule.note)
    check_uncertainty(meta["architecture"], uncertainty)
    check_data(pairs, c2, stfnet_fields.alignment(max(1, int(round(ratio)))), is_canceled)
    say(f"preparing ({meta['architecture']}, scale ratio {ratio:g}, device {device})")
    if adapt_epochs > 0:
        model, meta, adapted_cnn = adapt(model, meta, pairs, adapt_epochs, ratio,
                                         device=device, is_canceled=is_canceled,
                                         progress=methods.sub_progress(progress, 0.0, 0.2))
        use_cnn = adapted_cnn or use_cnn
    state = prepare(model, meta, pairs, c2, scale_ratio=ratio, use_cnn=use_cnn,
                    device=device, log=log, is_canceled=is_canceled, use_trust=use_trust,
                    uncertainty=bool(uncertainty))
    progress(0.2)
    module = methods.method_of(state)
    tile_size = tiling.whole_block_tile(tile_size, module.tile_multiple(state))
    total = tiling.tile_count(info.grid.width, info.grid.height, tile_size)
    say(f"fusing {total} tile(s) of {tile_size} px (halo {module.halo(state)} px)")
    tile_progress = tiling.TileProgress(methods.sub_progress(progress, 0.2, 1.0), total,
                                        info.band_count * len(pairs))
    methods.predict_files(state, pairs, c2, output, info, tile_size,
                          progress=tile_progress.tile_done, is_canceled=is_canceled,
                          step=tile_progress.step,
                          layer_outputs=[uncertainty] if uncertainty else [],
                          tile_map=tile_map)
    seconds = time.time() - started
    summary = {"architecture": state.METHOD, "cnn_used": getattr(state, "use_cnn", True),
               "scale_ratio": ratio, "scale_ratio_source": rule.source,
               "scale_ratio_note": rule.note,
               "trust": [t.summary() for t in getattr(state, "pair_trust", [])],
               "uncertainty": uncertainty,
               "unmixing_confidence": round(getattr(state, "alpha", 1.0), 3),
               "pairs": len(pairs), "device": str(device), "tile_size": tile_size,
               "tiles": total, "seconds": round(seconds, 2), "output": output,
               "model": {k: v for k, v in meta.items() if k != "history"}}
    say(f"done in {seconds:.1f} s")
    return summary
