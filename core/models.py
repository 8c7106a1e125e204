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
  FSDAF-like candidates of the fine change (``core/_fusion_fast.py``): the coarse change, its
  guided filter, the guided class-wise unmixing and the guided FSDAF-style prediction. Each
  band is processed separately with channels normalised by the band's scene-wide standard
  deviation, so one set of weights serves 3-band and 6-band data. It outputs per-pixel
  softmax weights over the candidates (plus an optional free correction, off by default);
  initialised to lean towards the FSDAF-style candidate (the non-CNN default). One 3x3 layer
  then 1x1 layers: receptive field 3x3, about 1,000 multiply-adds per pixel and band (fast
  enough for full scenes).

Model files are ``torch.save({'format': ..., 'state_dict': ..., 'metadata_json': str})`` and
are read with ``torch.load(weights_only=True)``: tensors and plain containers only, so a
crafted file that would run code on load is refused with ``ModelFileError``.
"""
import json
from typing import Dict, Tuple

from . import atomic
from .torch_check import require_torch

torch = require_torch()
nn = torch.nn

FORMAT = "stfusion-model"
FORMAT_VERSION = 2          # 2: the stfnet of the fast candidates (v1 stfnet files are refused)
ARCHITECTURES = ("stfnet", "paper")
DEFAULT_ARCHITECTURE = "stfnet"

# channels of the stfnet input, per band (see fusion.stfnet_features)
STFNET_CANDIDATES = ("coarse_change", "guided_change", "guided_unmixed_change",
                     "fsdaf_style_change")
STFNET_EXTRA = ("fine_t1", "fine_local_std", "coarse_vs_guided", "unmixed_vs_fsdaf",
                "homogeneity")
ALIASES = {"default": DEFAULT_ARCHITECTURE}
STFNET_CHANNELS = len(STFNET_CANDIDATES) + len(STFNET_EXTRA)


class ModelFileError(ValueError):
    """A model file that cannot be used (unsafe, corrupt or of an unknown kind)."""


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

    def candidate_weights(self, x, mask=None):
        """The per-pixel softmax weights (N, candidates, H, W) (for reports/ablation)."""
        if mask is None:
            mask = torch.ones_like(x[:, :1])
        h = torch.relu(self.conv1(x * mask)) * mask
        h = torch.relu(self.conv2(h))
        return torch.softmax(self.head(h)[:, :self.candidates], dim=1)


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
    """Read a model file written by ``save_model``; refuses anything that is not plain data."""
    try:
        blob = torch.load(str(path), weights_only=True, map_location="cpu")
    except FileNotFoundError as exc:
        raise ModelFileError(f"model file '{path}' does not exist") from exc
    except Exception as exc:  # UnpicklingError for code-carrying payloads, corrupt zips
        raise ModelFileError(
            f"model file '{path}' was refused: it is not a plain-tensor stfusion model "
            f"(it may contain code, or be corrupt): {exc}") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelFileError(f"'{path}' is not an stfusion model file")
    try:
        meta = json.loads(blob["metadata_json"])
        state = blob["state_dict"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"model file '{path}' has no readable metadata: {exc}") from exc
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFileError(f"model file '{path}' needs a newer stfusion "
                             f"(format {meta.get('format_version')})")
    architecture = ALIASES.get(meta.get("architecture"), meta.get("architecture"))
    if architecture not in ARCHITECTURES:
        raise ModelFileError(f"model file '{path}' has unknown architecture '{architecture}'")
    model = build_model(architecture, int(meta.get("band_count") or 1),
                        **meta.get("options", {}))
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        raise ModelFileError(f"model file '{path}' does not match its architecture: "
                             f"{exc}") from exc
    model.eval()
    return model, meta
