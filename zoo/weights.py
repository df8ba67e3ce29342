"""Finding, reading and fingerprinting local weights (never the network).

Families resolve weights with `resolve_weights` (explicit path, library cache, or fixed-seed random
init), read files with `read_state_dict` and load them exactly with `load_into`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from zoo.errors import WeightsError

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt", ".pth.tar", ".torch")
_FINGERPRINTS: dict[tuple[str, int, int], str] = {}
T = TypeVar("T")


def fingerprint_file(path: str | os.PathLike) -> str:
    """sha256 (first 16 hex) of a weights file or of every file in a weights folder."""
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        key = (str(f.resolve()), st.st_size, st.st_mtime_ns)
        if key not in _FINGERPRINTS:
            fh = hashlib.sha256()
            with open(f, "rb") as stream:
                for chunk in iter(lambda: stream.read(1 << 22), b""):
                    fh.update(chunk)
            _FINGERPRINTS[key] = fh.hexdigest()
        h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
        h.update(_FINGERPRINTS[key].encode())
    return h.hexdigest()[:16]


def read_state_dict(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint file (.pth/.pt/.bin/.ckpt with torch's safe loader, or .safetensors)."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(p)))
        import torch

        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure means an unusable file
        detail = str(exc).splitlines()[0][:120] if str(exc) else ""
        raise WeightsError(f"cannot read weights {path}: not a torch.save or safetensors "
                           f"checkpoint ({type(exc).__name__}{': ' + detail if detail else ''})"
                           ) from None


# Resolving weights: an explicit path, a library's local cache, or fixed-seed random init. -------

RANDOM_INIT_SEED = 0
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class CachedWeights:
    """Weights a library keeps in a local cache under a known name (looked up, never downloaded).

    With `repo`: the first of `files` present in the Hugging Face cache for that repo (`folder`:
    return its snapshot folder instead, as transformers' from_pretrained wants). Without `repo`:
    the first of `files` in torch hub's checkpoints folder (where torch.hub downloads go).
    """

    repo: str = ""
    files: tuple[str, ...] = HF_WEIGHT_FILES
    folder: bool = False

    def find(self) -> Path | None:
        """The cached file or folder, or None."""
        if not self.repo:
            import torch

            hub = Path(torch.hub.get_dir()) / "checkpoints"
            return next((hub / f for f in self.files if (hub / f).is_file()), None)
        from huggingface_hub import try_to_load_from_cache

        for name in self.files:
            hit = try_to_load_from_cache(self.repo, name)
            if isinstance(hit, str):
                return Path(hit).parent if self.folder else Path(hit)
        return None

    def describe(self) -> str:
        """What `find` looks for, briefly (`zoo list`, messages)."""
        files = "|".join(self.files)
        if not self.repo:
            return f"torch hub cache {files}"
        return f"HF cache {self.repo}" + ("" if self.files == HF_WEIGHT_FILES else f" ({files})")

    def root(self) -> str:
        """The cache folder `find` searches."""
        if not self.repo:
            import torch

            return str(Path(torch.hub.get_dir()) / "checkpoints")
        from huggingface_hub import constants

        return constants.HF_HUB_CACHE


@dataclass(frozen=True)
class WeightSource:
    """Resolved weights: a local file or folder, or `path=None` for fixed-seed random init."""

    path: Path | None
    origin: str

    @property
    def random_init(self) -> bool:
        return self.path is None

    def file(self, names: Sequence[str] = HF_WEIGHT_FILES) -> Path:
        """The weights file: `path` itself, or the one inside a model folder (`weights_file_in`)."""
        if self.path is None:
            raise WeightsError("random init has no weights file")
        return weights_file_in(self.path, names) if self.path.is_dir() else self.path

    def fingerprint(self, variant: str = "") -> str:
        """Content hash of the weights, or `random-init:SEED[:variant]` (e.g. variant 'tiny')."""
        if self.path is not None:
            return fingerprint_file(self.path)
        return f"random-init:{RANDOM_INIT_SEED}" + (f":{variant}" if variant else "")


def resolve_weights(model_id: str, weights: str | os.PathLike | None, random_init: bool,
                    cached: Sequence[CachedWeights] = (), accepts: str = "") -> WeightSource:
    """Pick the weights for `model_id`: `weights` if given, random init if asked, else a cache hit.

    Never touches the network. Finding nothing is a `WeightsError` that says where it looked and
    how to pass weights (`accepts` describes the files the family reads).
    """
    if weights and random_init:
        raise WeightsError(f"{model_id}: pass either --weights or --random-init, not both")
    if weights:
        path = Path(weights).expanduser()
        if not path.exists():
            raise WeightsError(f"{model_id}: weights path {str(weights)!r} does not exist")
        return WeightSource(path, str(path))
    if random_init:
        return WeightSource(None, f"random init (seed {RANDOM_INIT_SEED})")
    for entry in cached:
        hit = entry.find()
        if hit is not None:
            return WeightSource(hit, f"{hit} ({entry.describe()})")
    roots = sorted({e.root() for e in cached})
    looked = (f"looked for {'; '.join(e.describe() for e in cached)} in {', '.join(roots)}"
              if cached else "no published weights to look for in a cache")
    raise WeightsError(f"no weights found for {model_id} ({looked}); pass --weights PATH"
                       f"{f' ({accepts})' if accepts else ''} or --random-init")


def weights_file_in(folder: str | os.PathLike, names: Sequence[str] = HF_WEIGHT_FILES) -> Path:
    """The weights file inside a model folder (first of `names`, else its only weights file)."""
    p = Path(folder)
    for name in names:
        if (p / name).is_file():
            return p / name
    found = sorted(f for f in p.iterdir() if f.is_file() and f.name.endswith(WEIGHT_SUFFIXES))
    if len(found) == 1:
        return found[0]
    raise WeightsError(f"cannot tell which weights file to use in folder {str(p)!r} (expected one "
                       f"of {', '.join(names)}; found {[f.name for f in found] or 'none'})")


def unwrap_checkpoint(checkpoint: Any, where: str) -> dict[str, Any]:
    """The state dict inside a training checkpoint: its `state_dict` (MoCo, Lightning, mmselfsup)
    or `model` (MAE, PyContrast) entry when that is a dict, else the checkpoint itself."""
    if not isinstance(checkpoint, dict):
        raise WeightsError(f"{where} holds a {type(checkpoint).__name__}, not a state dict")
    return next((checkpoint[k] for k in ("state_dict", "model")
                 if isinstance(checkpoint.get(k), dict)), checkpoint)


def _listing(keys: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def load_into(module: Any, state_dict: dict[str, Any], what: str,
              optional: Sequence[str] = ("num_batches_tracked",)) -> None:
    """Load `state_dict` into `module` exactly: missing, unexpected or mis-shaped keys are a
    `WeightsError` listing them (missing keys ending in one of `optional` are tolerated)."""
    import torch

    def shape(value: Any) -> Any:
        return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__

    own = module.state_dict()
    missing = [k for k in own if k not in state_dict and not k.endswith(tuple(optional))]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k} {shape(v)} vs model {shape(own[k])}" for k, v in state_dict.items()
              if k in own and shape(v) != shape(own[k])]
    problems = [f"{label} {len(keys)} keys: {_listing(keys)}" for label, keys in
                (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)) if keys]
    if problems:
        raise WeightsError(f"{what} does not fit the model: {'; '.join(problems)}")
    module.load_state_dict(state_dict, strict=False)


def build_seeded(build: Callable[[], T]) -> T:
    """Run `build()` with torch's RNG seeded to RANDOM_INIT_SEED, leaving the caller's RNG as is."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        return build()
