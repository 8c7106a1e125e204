"""Fusion network architectures and a safe model file format.

Architectures (``ARCHITECTURES``):

- ``"paper"`` — the paper's regression DCNN. Input: a 3x3 patch of the coarse image (MODIS
  already up-sampled onto the fine grid), all bands; two 3x3 convolutions, a 2x2 max pooling,
  two fully connected layers with ReLU activations; output: the fine values of the patch's
  **centre pixel** (all bands). Prediction slides the 3x3 window over the image, which is the
  "patch by patch, re-assembled" of the paper with one output pixel per patch (no overlap to
  blend). Band-specific: ``band_count`` bands in, the same bands out; inputs and outputs are
  standardised with per-band mean/std stored in the model (``scaling`` in the metadata).
- ``"stfnet"`` (the default) — a band-agnostic blending CNN used on top of deterministic,
  FSDAF-like candidates of the fine change (``core/stfnet_fields.py``): the coarse change, its
  guided filter, the guided class-wise unmixing and the guided FSDAF-style prediction. Each
  band is processed separately with channels normalised by the band's scene-wide standard
  deviation, so one set of weights serves 3-band and 6-band data. It outputs per-pixel
  softmax weights over the candidates (plus an optional free correction, off by default);
  initialised to lean towards the FSDAF-style candidate (the non-CNN default). One 3x3 layer
  then 1x1 layers: receptive field 3x3, about 1,000 multiply-adds per pixel and band (fast
  enough for full scenes).

Model files are ``torch.save({'format': ..., 'state_dict': ..., 'metadata_json': str})`` and
are read with ``torch.load(weights_only=True)``: tensors and plain containers only, so a
crafted file that would run code on load is refused with ``ModelFileError``. Before that the
archive's unpacked size is bounded (``MAX_MODEL_BYTES``), and before any network is built
the metadata is checked against ``METADATA_SCHEMA`` (types and bounds of every value that
sizes or configures the network), so a small file cannot make stfusion allocate gigabytes.
"""
import json
import math
import zipfile
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

from . import atomic
from .errors import InputError
from .torch_check import require_torch

torch = require_torch()
nn = torch.nn

FORMAT = "stfusion-model"
FORMAT_VERSION = 2          # 2: the stfnet of the fast candidates (v1 stfnet files are refused)
ARCHITECTURES = ("stfnet", "paper")
DEFAULT_ARCHITECTURE = "stfnet"

# channels of the stfnet input, per band (see fusion.stfnet_band_inputs)
STFNET_CANDIDATES = ("coarse_change", "guided_change", "guided_unmixed_change",
                     "fsdaf_style_change")
STFNET_EXTRA = ("fine_t1", "fine_local_std", "coarse_vs_guided", "unmixed_vs_fsdaf",
                "homogeneity")
ALIASES = {"default": DEFAULT_ARCHITECTURE}
STFNET_CHANNELS = len(STFNET_CANDIDATES) + len(STFNET_EXTRA)


class ModelFileError(InputError):
    """A model file that cannot be used (unsafe, corrupt, of an unknown kind, or with
    metadata outside ``METADATA_SCHEMA``); it concerns the MODEL parameter."""

    def __init__(self, message: str):
        super().__init__("MODEL", message)


MAX_MODEL_BYTES = 64 << 20       # unpacked content of a model file (the default: 11 KB)


@dataclass(frozen=True)
class Bounds:
    """What one metadata value may be: its type, an inclusive range or a set of choices."""
    kind: type
    low: Optional[float] = None
    high: Optional[float] = None
    choices: Tuple = ()
    nullable: bool = False

    def problem(self, value) -> Optional[str]:
        if value is None:
            return None if self.nullable else "is missing (null)"
        numeric = self.kind in (int, float)
        if isinstance(value, bool) != (self.kind is bool) or not (
                isinstance(value, self.kind) or (self.kind is float and isinstance(value, int))):
            return f"is {json.dumps(value)[:40]}, not {'a number' if numeric else self.kind.__name__}"
        if numeric and not math.isfinite(value):
            return f"is {value}, not a finite number"
        if self.low is not None and not self.low <= value <= self.high:
            return f"is {value}, outside {self.low:g} to {self.high:g}"
        if self.choices and value not in self.choices:
            return f"is '{value}', not one of {', '.join(self.choices)}"
        return None


# every value that sizes or configures a network or the fusion; other keys (history, dates,
# training settings) are descriptive and only shown in reports
NETWORK_OPTIONS = {
    "paper": {"width": Bounds(int, 1, 256), "hidden": Bounds(int, 1, 1024)},
    "stfnet": {"hidden": Bounds(int, 1, 256), "correction_scale": Bounds(float, -10, 10),
               "prefer": Bounds(int, 0, len(STFNET_CANDIDATES) - 1),
               "prefer_logit": Bounds(float, -50, 50)},
}
FUSION_OPTIONS = {"classes": Bounds(int, 1, 64), "window": Bounds(int, 1, 63),
                  "ridge": Bounds(float, 0, 1e6), "eps": Bounds(float, 0, 1)}
METADATA_SCHEMA = {
    "format_version": Bounds(int, 1, FORMAT_VERSION),
    "architecture": Bounds(str, choices=ARCHITECTURES + tuple(ALIASES)),
    "band_count": Bounds(int, 1, 256, nullable=True),
    "trained": Bounds(bool, nullable=True),
    "use_cnn_by_default": Bounds(bool, nullable=True),
    "scale_ratio": Bounds(float, 1, 1000, nullable=True),
}


def check_metadata(meta) -> Dict:
    """``meta`` if it fits ``METADATA_SCHEMA`` (and the options of its architecture), else
    ``ModelFileError`` saying which value is wrong."""
    if not isinstance(meta, dict):
        raise ModelFileError("its metadata is not a JSON object")
    _check_values(meta, METADATA_SCHEMA, "", required=("architecture",))
    if meta.get("format_version", 0) < FORMAT_VERSION and \
            ALIASES.get(meta["architecture"], meta["architecture"]) == "stfnet":
        raise ModelFileError("it is a version-1 default model, which this stfusion no "
                             "longer reads; train a new one with stfusion:train")
    architecture = ALIASES.get(meta["architecture"], meta["architecture"])
    if architecture == "paper" and meta.get("band_count") is None:
        raise ModelFileError("metadata 'band_count' is missing; a paper model needs it")
    for key, schema in (("options", NETWORK_OPTIONS[architecture]),
                        ("fusion_options", FUSION_OPTIONS)):
        if key in meta:
            if not isinstance(meta[key], dict):
                raise ModelFileError(f"metadata '{key}' is not a JSON object")
            unknown = sorted(set(meta[key]) - set(schema))
            if unknown:
                raise ModelFileError(f"metadata '{key}' has unknown keys {unknown}; known: "
                                     f"{sorted(schema)}")
            _check_values(meta[key], schema, key + ".")
    return meta


def _check_values(values: Mapping, schema: Mapping[str, Bounds], prefix: str,
                  required: Tuple[str, ...] = ()) -> None:
    for key in required:
        if key not in values:
            raise ModelFileError(f"metadata '{prefix}{key}' is missing")
    for key, bounds in schema.items():
        problem = bounds.problem(values[key]) if key in values else None
        if problem:
            raise ModelFileError(f"metadata '{prefix}{key}' {problem}")


class PaperDCNN(nn.Module):
    """The paper's regression DCNN on 3x3 patches: (N, bands, 3, 3) -> (N, bands)."""

    def __init__(self, band_count: int, width: int = 32, hidden: int = 128):
        super().__init__()
        self.band_count = band_count
        self.features = nn.Sequential(
            nn.Conv2d(band_count, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2, stride=1))                      # 3x3 -> 2x2
        self.regressor = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * width * 4, hidden), nn.ReLU(),
            nn.Linear(hidden, band_count))
        # standardisation of inputs (coarse) and outputs (fine), set by training
        self.register_buffer("in_mean", torch.zeros(band_count))
        self.register_buffer("in_std", torch.ones(band_count))
        self.register_buffer("out_mean", torch.zeros(band_count))
        self.register_buffer("out_std", torch.ones(band_count))

    def forward(self, patches):
        """Standardised patches in, standardised centre values out."""
        return self.regressor(self.features(patches))

    def predict_reflectance(self, patches):
        """Reflectance patches (N, bands, 3, 3) -> reflectance centre values (N, bands)."""
        x = (patches - self.in_mean[None, :, None, None]) / self.in_std[None, :, None, None]
        return self.forward(x) * self.out_std[None] + self.out_mean[None]


class STFNet(nn.Module):
    """Band-agnostic blending CNN: (N, STFNET_CHANNELS, H, W) -> (N, 1, H, W).

    The output is the predicted fine change divided by the band's scale: a softmax-weighted
    blend of the candidate change fields (first channels) plus ``correction_scale`` times a
    free correction. One 3x3 layer (padding 1) then 1x1 layers: reaches 1 pixel.
    """

    receptive_radius = 1

    # leave-one-site-out: a free correction (scale 0.1) did not transfer to unseen sites
    # (+4 % RMSE on average), the pure softmax blend did (-0.1 %), hence scale 0
    def __init__(self, hidden: int = 12, correction_scale: float = 0.0,
                 prefer: int = 3, prefer_logit: float = 0.5):
        super().__init__()
        n = len(STFNET_CANDIDATES)
        self.candidates = n
        self.correction_scale = correction_scale
        self.conv1 = nn.Conv2d(STFNET_CHANNELS, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, hidden, 1)
        self.head = nn.Conv2d(hidden, n + 1, 1)
        with torch.no_grad():        # start as the non-CNN default: pick candidate `prefer`
            self.head.weight.mul_(0.1)
            self.head.bias.fill_(-prefer_logit)
            self.head.bias[prefer] = prefer_logit
            self.head.bias[n] = 0.0

    def forward(self, x, mask=None):
        """``mask`` (N, 1, H, W): 1 on valid pixels. Hidden activations are zeroed where
        invalid, so pixels outside the image (NaN halo of a tile) and the zero padding of an
        untiled run look the same to the next layer (tiled == untiled)."""
        if mask is None:
            mask = torch.ones_like(x[:, :1])
        h = torch.relu(self.conv1(x * mask)) * mask
        h = torch.relu(self.conv2(h))
        out = self.head(h)
        weights = torch.softmax(out[:, :self.candidates], dim=1)
        blend = (weights * x[:, :self.candidates]).sum(1, keepdim=True)
        return blend + self.correction_scale * out[:, self.candidates:]


def resolve_architecture(name: str) -> str:
    """'default' -> DEFAULT_ARCHITECTURE; checks the name."""
    name = ALIASES.get(name, name)
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture '{name}'; choose one of "
                         f"{ARCHITECTURES + tuple(ALIASES)}")
    return name


def build_model(architecture: str = DEFAULT_ARCHITECTURE, band_count: int = 6, **options):
    """A freshly initialised network of the given architecture."""
    architecture = resolve_architecture(architecture)
    if architecture == "paper":
        return PaperDCNN(band_count, **options)
    return STFNet(**options)


def save_model(path: str, model, metadata: Dict) -> None:
    """Write weights and JSON metadata (no pickled objects)."""
    meta = dict(metadata)
    meta.setdefault("format_version", FORMAT_VERSION)
    if "architecture" not in meta:
        raise ValueError("metadata needs an 'architecture'")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    with atomic.atomic_output(str(path)) as temp:
        torch.save({"format": FORMAT, "state_dict": state,
                    "metadata_json": json.dumps(meta, sort_keys=True)}, temp)


def load_model(path: str) -> Tuple[object, Dict]:
    """Read a model file written by ``save_model``; refuses anything that is not plain data,
    is larger than ``MAX_MODEL_BYTES`` unpacked, or whose metadata is outside the schema
    (``check_metadata``), before building the network."""
    _check_archive(path)
    try:
        blob = torch.load(str(path), weights_only=True, map_location="cpu")
    except Exception as exc:  # UnpicklingError for code-carrying payloads, corrupt zips
        raise ModelFileError(f"model file '{path}' was refused: {_load_failure(exc)}; "
                             "stfusion reads plain tensors only and never runs code from a "
                             "file. Use a model written by stfusion:train.") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelFileError(f"'{path}' is not an stfusion model file")
    try:
        meta = json.loads(blob["metadata_json"])
        state = blob["state_dict"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"model file '{path}' has no readable metadata: {exc}") from None
    try:
        check_metadata(meta)
    except ModelFileError as exc:
        raise ModelFileError(f"model file '{path}': {exc.message}") from None
    architecture = ALIASES.get(meta["architecture"], meta["architecture"])
    model = build_model(architecture, meta.get("band_count") or 1, **meta.get("options", {}))
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        raise ModelFileError(f"model file '{path}' does not match its architecture: "
                             f"{exc}") from None
    model.eval()
    return model, meta


def _check_archive(path: str) -> None:
    """A model file is a zip archive (torch.save's format) of bounded unpacked size."""
    try:
        with zipfile.ZipFile(str(path)) as archive:
            unpacked = sum(entry.file_size for entry in archive.infolist())
    except FileNotFoundError:
        raise ModelFileError(f"model file '{path}' does not exist") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f"'{path}' is not an stfusion model file (not a torch.save "
                             f"archive: {exc})") from None
    if unpacked > MAX_MODEL_BYTES:
        raise ModelFileError(f"model file '{path}' unpacks to {unpacked / 2 ** 20:.0f} MB, "
                             f"more than the {MAX_MODEL_BYTES >> 20} MB an stfusion model may "
                             "have")


def _load_failure(exc: Exception) -> str:
    """PyTorch's reason for refusing a file, without its advice to load it unsafely (or to
    allow-list what the file asks for)."""
    import pickle
    paragraphs = [p.strip() for p in str(exc).split("\n\n") if p.strip()]
    reasons = [p for p in paragraphs if "weights_only" not in p
               and not p.startswith(("Weights only load failed", "Check the documentation"))]
    reason = reasons[0].split(". ")[0].rstrip(".") if reasons else type(exc).__name__
    if isinstance(exc, pickle.UnpicklingError):
        return f"it holds Python objects, not only tensors ({reason})"
    return reason[:200]
