"""Finding, reading and fingerprinting local weights (never the network).

Families resolve weights with `resolve_weights` (explicit path, library cache, or fixed-seed random
init), read files with `read_state_dict` and load them exactly with `load_into`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from zoo.errors import WeightsError

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt", ".pth.tar", ".torch")
_FINGERPRINTS: dict[tuple[str, int, int], str] = {}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
T = TypeVar("T")


def sha256_of(path: str | os.PathLike) -> str:
    """Full sha256: of the file itself (as `sha256sum` prints it), or for a folder of the sorted
    (relative path, file sha256) pairs of every file in it."""
    p = Path(path)
    if p.is_file():
        return _file_sha256(p)
    h = hashlib.sha256()
    for f in sorted(f for f in p.rglob("*") if f.is_file()):
        h.update(str(f.relative_to(p)).encode())
        h.update(_file_sha256(f).encode())
    return h.hexdigest()


def _file_sha256(f: Path) -> str:
    st = f.stat()
    key = (str(f.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FINGERPRINTS:
        fh = hashlib.sha256()
        with open(f, "rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 22), b""):
                fh.update(chunk)
        _FINGERPRINTS[key] = fh.hexdigest()
    return _FINGERPRINTS[key]


def fingerprint_file(path: str | os.PathLike) -> str:
    """The weights' identity in cache keys: the first 16 hex of `sha256_of`."""
    return sha256_of(path)[:16]


def _safe_globals() -> list[Any]:
    """Harmless types that real training checkpoints pickle beside their tensors: argparse
    `args`/`opt` (MAE, PyContrast), numpy scalars, dtypes and arrays (`best_acc`, ...), paths.
    Under both numpy 1 and numpy 2 module names; never a callable that runs arbitrary code."""
    import argparse
    import pathlib

    import numpy as np

    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    dtypes = [getattr(np.dtypes, n) for n in dir(np.dtypes)
              if n.endswith("DType") and n != "ObjectDType"]
    named = [(f, f"{module}.{f.__name__}") for f in (multiarray.scalar, multiarray._reconstruct)
             for module in ("numpy.core.multiarray", "numpy._core.multiarray")]
    return [argparse.Namespace, np.dtype, np.ndarray, *dtypes, *named, pathlib.PosixPath,
            pathlib.PurePosixPath, pathlib.WindowsPath, pathlib.PureWindowsPath]


def is_torchscript(path: str | os.PathLike) -> bool:
    """Whether `path` is a TorchScript archive (torch.jit.save), e.g. OpenAI's CLIP `.pt` files."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in archive.namelist())


def read_state_dict(path: str | os.PathLike, trust: bool = False) -> Any:
    """Load a checkpoint: .safetensors, a TorchScript archive (its state dict), or a torch.save
    file with torch's weights-only unpickler plus `_safe_globals` (`trust`: full unpickling, also
    of a plain `pickle.dump` file).

    A file that needs more than that is refused with one line naming its unsafe globals and the
    opt-in (--trust-weights / trust_weights=True); its pickled code is never run by default.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(p)))
        import torch

        if is_torchscript(p):  # TorchScript's own loader: runs no pickled Python
            return dict(torch.jit.load(str(p), map_location="cpu").state_dict())
        if trust:
            return _unpickle(p)
        with torch.serialization.safe_globals(_safe_globals()):
            try:
                return torch.load(p, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as exc:
                unsafe = unsafe_globals(p, exc)
                if not unsafe:
                    raise
        raise refusal(p, unsafe)
    except WeightsError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure means an unusable file
        raise WeightsError(f"cannot read weights {path}: not a torch.save, TorchScript or "
                           f"safetensors checkpoint ({type(exc).__name__}"
                           f"{': ' + brief(exc) if brief(exc) else ''})") from None


def _unpickle(p: Path) -> Any:
    """Full unpickling (--trust-weights): torch.load, or pickle.load for a plain pickle; code
    the file needs but this Python lacks is a WeightsError naming it."""
    import torch

    from zoo.model.pickles import is_plain_pickle

    plain = not _is_zip(p) and is_plain_pickle(p)
    try:
        if plain:
            with open(p, "rb") as stream:
                return pickle.load(stream)  # noqa: S301 - the user trusts this file
        return torch.load(p, map_location="cpu", weights_only=False)
    except (ImportError, AttributeError) as exc:
        what = "a plain pickle" if plain else "a torch.save checkpoint"
        module = getattr(exc, "name", None)
        need = (f"the module {module!r}, which is not installed here" if module
                else f"Python code this environment lacks ({brief(exc)})")
        raise WeightsError(f"{p} is {what} whose pickled objects need {need}: install the "
                           "package that provides it and rerun, or re-save the file as a plain "
                           "state dict (or .safetensors) where it loads") from None


def _is_zip(path: Path) -> bool:
    """Whether `path` is a zip archive (torch.save's default format, TorchScript)."""
    import zipfile

    return zipfile.is_zipfile(path)


def refusal(path: Path, unsafe: Sequence[str]) -> WeightsError:
    """The one-line refusal of a file whose unpickling would import or call `unsafe`."""
    return WeightsError(
        f"{path} pickles Python objects that weights-only loading refuses ({', '.join(unsafe)}); "
        "loading it would run code from the file, so zoo did not: if you trust its source, "
        "pass --trust-weights")


def unsafe_globals(path: Path, exc: Exception | None = None) -> list[str]:
    """The pickle globals of a torch.save or pickle file that the allowlist (torch's and
    `_safe_globals`, when active) does not cover, listed statically: every one, not only the
    first that torch's refusal (`exc`) names."""
    import torch

    try:
        return sorted(set(torch.serialization.get_unsafe_globals_in_checkpoint(path)))
    except Exception:  # noqa: BLE001 - a legacy or plain pickle: zoo's own listing
        from zoo.model.pickles import pickle_globals

        allowed: set[str] = set()
        try:
            from torch import _weights_only_unpickler as wo

            allowed = set(wo._get_allowed_globals()) | set(wo._get_user_allowed_globals())
        except Exception:  # noqa: BLE001 - a torch without these helpers: list them all
            pass
        found = [g for g in pickle_globals(path) if g not in allowed]
        named = re.findall(r"GLOBAL ([\w.]+)", str(exc)) if exc is not None else []
        return sorted(set(found) | set(named))


def brief(exc: BaseException | str, limit: int = 300) -> str:
    """An error's text as one line for a message: ANSI codes dropped, whitespace collapsed, cut
    after its last whole sentence (else word) within `limit` characters."""
    text = " ".join(_ANSI.sub("", str(exc)).split())
    if len(text) <= limit:
        return text
    head = text[:limit]
    end = max(head.rfind(". "), head.rfind("; "))
    return head[:end + 1] if end > limit // 3 else head.rsplit(" ", 1)[0] + " ..."


# Resolving weights: an explicit path, a library's local cache, or fixed-seed random init. -------

RANDOM_INIT_SEED = 0
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def torch_hub_dir() -> str:
    """torch.hub.get_dir(), without importing torch when it is not loaded yet (`zoo info`)."""
    import sys

    if "torch" in sys.modules:
        return sys.modules["torch"].hub.get_dir()
    home = os.getenv("TORCH_HOME") or os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"),
                                                   "torch")
    return os.path.join(os.path.expanduser(home), "hub")


@dataclass(frozen=True)
class CachedWeights:
    """Weights a library keeps in a local cache under a known name (looked up, never downloaded).

    With `repo`: the first of `files` present in the Hugging Face cache for that repo (HF_HUB_CACHE
    / HF_HOME; `folder`: return its snapshot folder instead, as transformers' from_pretrained
    wants). With `path`: that file (`~` expanded), e.g. OpenAI's ~/.cache/clip/ViT-B-16.pt.
    Otherwise: the first of `files` in torch hub's checkpoints folder (torch.hub downloads).
    `format` names the layout the files published under this name have (e.g. "original
    release"): the family's reading where keys alone cannot tell, and `zoo info`'s transform.
    """

    repo: str = ""
    files: tuple[str, ...] = HF_WEIGHT_FILES
    folder: bool = False
    path: str = ""
    format: str = ""

    def find(self) -> Path | None:
        """The cached file or folder, or None."""
        if self.path:
            found = Path(self.path).expanduser()
            return found if found.is_file() else None
        if not self.repo:
            hub = Path(self.root())
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
        if self.path:
            return self.path
        if not self.repo:
            return f"torch hub cache {files}"
        return f"HF cache {self.repo}" + ("" if self.files == HF_WEIGHT_FILES else f" ({files})")

    def root(self) -> str:
        """The cache folder `find` searches."""
        if self.path:
            return str(Path(self.path).expanduser().parent)
        if not self.repo:
            return str(Path(torch_hub_dir()) / "checkpoints")
        from huggingface_hub import constants

        return constants.HF_HUB_CACHE


@dataclass(frozen=True)
class WeightSource:
    """Resolved weights: a local file or folder (`path=None`: fixed-seed random init).

    `where` says how it was found (the path given, or the cache entry), `format` the layout the
    family detected, `candidates` the other sources that were found, `trust` whether full
    unpickling was allowed (--trust-weights), `declared` the format of the cache entry it was
    found under ("" for a path given).
    """

    path: Path | None
    where: str
    format: str = ""
    candidates: tuple[str, ...] = ()
    trust: bool = False
    declared: str = ""

    @property
    def random_init(self) -> bool:
        return self.path is None

    def file(self, names: Sequence[str] = HF_WEIGHT_FILES) -> Path:
        """The weights file: `path` itself, or the one inside a model folder (`weights_file_in`)."""
        if self.path is None:
            raise WeightsError("random init has no weights file")
        return weights_file_in(self.path, names) if self.path.is_dir() else self.path

    def read(self, names: Sequence[str] = HF_WEIGHT_FILES) -> Any:
        """The checkpoint in `file(names)`, read safely unless `trust` (see `read_state_dict`)."""
        return read_state_dict(self.file(names), trust=self.trust)

    def detected(self, format: str) -> WeightSource:
        """This source with the layout the family detected recorded."""
        return replace(self, format=format)

    def fingerprint(self, variant: str = "") -> str:
        """Content hash of the weights, or `random-init:SEED[:variant]` (e.g. variant 'tiny')."""
        if self.path is not None:
            return fingerprint_file(self.path)
        return f"random-init:{RANDOM_INIT_SEED}" + (f":{variant}" if variant else "")

    def sha256(self) -> str | None:
        """Full sha256 of the weights (`sha256_of`), None at random init."""
        return None if self.path is None else sha256_of(self.path)

    def summary(self) -> str:
        """One line: where, detected format, and the other candidates."""
        text = self.where + (f"; format: {self.format}" if self.format else "")
        return text + (f"; also found: {', '.join(self.candidates)}" if self.candidates else "")


def resolve_weights(model_id: str, weights: str | os.PathLike | None, random_init: bool,
                    cached: Sequence[CachedWeights] = (), accepts: str = "", *,
                    source: str | None = None, trust: bool = False) -> WeightSource:
    """Pick the weights for `model_id`: `weights` if given, random init if asked, else a cache hit
    (`source`: the hit whose description contains this text; default the first).

    Never touches the network. Finding nothing is a `WeightsError` that says where it looked and
    how to pass weights (`accepts` describes the files the family reads).
    """
    if weights and random_init:
        raise WeightsError(f"{model_id}: pass either --weights or --random-init, not both")
    if weights:
        path = Path(weights).expanduser().absolute()
        if not path.exists():
            raise WeightsError(f"{model_id}: weights path {str(weights)!r} does not exist")
        from zoo.io import protect_input

        protect_input(path, "weights")
        return WeightSource(path, str(path), trust=trust)
    if random_init:
        return WeightSource(None, f"random init (seed {RANDOM_INIT_SEED})")
    hits = [(hit, f"{hit} ({entry.describe()})", entry) for entry in cached
            if (hit := entry.find()) is not None]
    if hits:
        chosen = [h for h in hits if source in h[1]] if source else hits[:1]
        if len(chosen) != 1:
            raise WeightsError(f"{model_id}: --weights-source {source!r} matches "
                               f"{len(chosen)} of the sources found: "
                               f"{'; '.join(w for _, w, _ in hits)}")
        path, where, entry = chosen[0]
        others = tuple(w for _, w, _ in hits if w != where)
        return WeightSource(path, where, candidates=others, trust=trust, declared=entry.format)
    roots = sorted({e.root() for e in cached})
    looked = (f"looked for {'; '.join(e.describe() for e in cached)} in {', '.join(roots)}"
              if cached else "no published weights to look for in a cache")
    raise MissingWeights({model_id: looked}, accepts)


class MissingWeights(WeightsError):
    """No weights for one or more models: names every one, where zoo looked, and the ways
    forward (train them with `make demo` / `zoo train`, pass weights, or random init)."""

    def __init__(self, looked: dict[str, str], accepts: str = "") -> None:
        self.looked, self.accepts = dict(looked), accepts
        ids = list(self.looked)
        found = "; ".join(f"{m}: {where}" for m, where in self.looked.items())
        ways = []
        trainable = [m for m in ids if m.split("/")[0] in TRAINABLE_FAMILIES]
        if trainable:
            ways.append("run `make demo` (trains small unetpp and mask2former models on the "
                        "offline lesion set, minutes on a CPU; they become the defaults) or "
                        f"`zoo train {trainable[0]} --data isic:PATH` (fine-tune on your masks)")
        one = "--weights PATH" if len(ids) == 1 else "--weights MODEL=PATH for each"
        ways.append(f"pass {one}{f' ({accepts})' if accepts and len(ids) == 1 else ''}")
        ways.append("pass --random-init (fixed-seed random weights: for checking the plumbing, "
                    "not for conclusions)")
        super().__init__(f"no weights found for {' and '.join(ids)} ({found}). Ways forward: "
                         + "; or ".join(ways))

    def merged(self, other: MissingWeights) -> MissingWeights:
        """One error naming the models of both."""
        return MissingWeights({**self.looked, **other.looked}, self.accepts or other.accepts)


# Families `zoo train` fine-tunes and `make demo` trains (the study's segmentation models).
TRAINABLE_FAMILIES = ("unetpp", "mask2former")


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
