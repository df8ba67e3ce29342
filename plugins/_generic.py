"""What the generic families (timm, hf, open_clip, torchvision) share.

* `Plan`: a family's layer plan (name, upstream module, role, prefix tokens) and `Extractor`,
  the library call that yields those layers' channels-last features for a batch.
* `declare_layers`: LayerInfos from one forward of the plan on the `meta` device (shapes only,
  no weights, no compute), channels and strides read off the shapes, depth from plan order.
* `make_model`: a ZooModel whose features come from the library's own intermediates API, with
  the extraction path in its fingerprint and provenance.
* An offline name index per installed library version, and the Hugging Face cache's repos, read
  without importing torch (`zoo list`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import UnknownNameError, ZooError
from zoo.registry.families import glob_match
from zoo.registry.specs import InputConfig, LayerInfo, ModelSpec

if TYPE_CHECKING:
    import torch

    from zoo.model.weights import WeightSource

@dataclass(frozen=True)
class PlanRow:
    """One layer as the library names it: `module` is the upstream module path (informational
    where the features come from an intermediates API), `prefix` the count of class, register
    and distillation tokens before the patch tokens (NLC layers)."""

    name: str
    module: str
    role: str
    prefix: int = 0
    nhwc: bool = False  # a 4-D output already channels-last (torchvision Swin stages)


# (module, batch, plan rows) -> {layer name: channels-last tensor}
Extractor = Callable[[Any, "torch.Tensor", Sequence[PlanRow]], dict[str, "torch.Tensor"]]


def layer_info(row: PlanRow, shape: Sequence[int], size: int, depth: float) -> LayerInfo:
    """The LayerInfo of a plan row from its channels-last feature shape at input `size`."""
    if len(shape) == 4:
        return LayerInfo(row.name, row.module, row.role, "NCHW", int(shape[3]),
                         stride=max(1, round(size / shape[1])), depth=depth)
    if len(shape) == 3:
        patches = int(shape[1]) - row.prefix
        side = math.isqrt(max(patches, 0))
        stride = round(size / side) if side and side * side == patches else None
        return LayerInfo(row.name, row.module, row.role, "NLC", int(shape[2]), stride=stride,
                         depth=depth, prefix_tokens=row.prefix)
    if len(shape) == 2:
        return LayerInfo(row.name, row.module, row.role, "NC", int(shape[1]), depth=depth)
    raise ZooError(f"layer {row.name}: output shape {tuple(shape)} is not a map, tokens or "
                   "a vector")


def declare_layers(module: Any, plan: Sequence[PlanRow], extract: Extractor, size: int,
                   device: str = "meta") -> list[LayerInfo]:
    """LayerInfos of `plan` from one (1, 3, size, size) forward through `extract` on `device`
    (`meta`: shapes only; families fall back to a CPU build where the library needs values)."""
    import torch

    with torch.inference_mode():
        feats = extract(module, torch.zeros(1, 3, size, size, device=device), plan)
    last = max(len(plan) - 1, 1)
    return [layer_info(row, tuple(feats[row.name].shape), size, i / last)
            for i, row in enumerate(plan)]


def layers_without_weights(build: Callable[[], Any], plan: Callable[[Any], Sequence[PlanRow]],
                           extract: Extractor, size: int) -> list[LayerInfo]:
    """`declare_layers` on a `meta` build of the model (no weights, no compute); where the
    library needs real values to build or run, on a fixed-seed CPU build instead."""
    import torch

    try:
        with torch.device("meta"):
            model = build().eval()
        return declare_layers(model, plan(model), extract, size)
    except (NotImplementedError, RuntimeError):  # an op without a meta kernel
        model = seeded(build).eval()
        return declare_layers(model, plan(model), extract, size, device="cpu")


def channels_last(row: PlanRow, t: torch.Tensor) -> torch.Tensor:
    """A feature in zoo's channels-last layout: NCHW maps permuted, vectors flattened."""
    if t.ndim > 2 and row.role == "embedding":
        return t.flatten(1)
    if t.ndim == 4 and not row.nhwc:
        return t.permute(0, 2, 3, 1)
    return t


def hook_features(module: Any, rows: Sequence[PlanRow], forward: Callable[[], Any],
                  out: dict[str, Any]) -> Any:
    """Run `forward()` with forward hooks on the rows' modules, their first call's outputs put
    channels-last into `out`; returns what `forward` returns."""
    def hook(row: PlanRow, output: Any) -> None:  # returns None: the output is left as it is
        if row.name not in out:
            out[row.name] = channels_last(
                row, output[0] if isinstance(output, (tuple, list)) else output)

    mods = dict(module.named_modules())
    handles = [mods[r.module].register_forward_hook(lambda _m, _i, o, r=r: hook(r, o))
               for r in rows]
    try:
        return forward()
    finally:
        for h in handles:
            h.remove()


def make_model(spec: ModelSpec, module: Any, layers: list[LayerInfo], plan: Sequence[PlanRow],
               extract: Extractor, path: str, source: WeightSource, input: InputConfig,
               device: str, provenance: dict[str, Any], variant: str = "",
               transform: Callable[[Any], Any] | None = None,
               upstream: Extractor | None = None) -> Any:
    """A ZooModel whose `forward_layers` runs `extract` (the library's intermediates API,
    `path` names it) on the requested layers only; `provenance` is added to its provenance and
    `path` and the build `variant` (a reduced or reconfigured build, with weights too) to its
    fingerprint, and at random init the built weights' hash. `transform` (one PIL image ->
    tensor) replaces the InputConfig transform where the library's own object must run as is
    (torchvision Weights.transforms).
    `upstream` is an independent call of the library's API, for `zoo check`."""
    import torch

    from zoo.model.base import ZooModel

    rows = {r.name: r for r in plan}

    class LibraryModel(ZooModel):
        extraction_path = path

        def upstream_features(self, x: torch.Tensor) -> dict[str, torch.Tensor] | None:
            """Every layer through the library's own API called directly (None: no such API)."""
            if upstream is None:
                return None
            with torch.inference_mode():
                return upstream(self.module, x.to(self.device), list(plan))

        @torch.inference_mode()
        def forward_layers(self, x: torch.Tensor, layers: Sequence[str],
                           stop_early: bool = True) -> dict[str, torch.Tensor]:
            wanted = [rows[self.layer(n).name] for n in layers]
            feats = extract(self.module, x.to(self.device), wanted)
            return {n: feats[n].detach() for n in layers}

        def provenance(self) -> dict[str, Any]:
            return {**super().provenance(), "extraction": path, **provenance}

        def preprocess(self, images: Sequence[Any]) -> torch.Tensor:
            if transform is None or self.input.override:
                return super().preprocess(images)
            return torch.stack([transform(im.convert("RGB")) for im in images])

    fingerprint = source.fingerprint(variant) + (
        f":{variant}" if variant and not source.random_init else "") + f":{path}"
    if source.random_init:  # keyed by the weights as built: a library upgrade may change init
        from zoo.model.wrapped import state_fingerprint

        fingerprint += f":{state_fingerprint(module)[:16]}"
    return LibraryModel(spec, module, layers, fingerprint=fingerprint,
                        random_init=source.random_init, device=device, input=input,
                        source=source)


def seeded(build: Callable[[], Any]) -> Any:
    """`zoo.model.weights.build_seeded`: random init the same every time."""
    from zoo.model.weights import build_seeded

    return build_seeded(build)


# --- offline indexes (no torch) -----------------------------------------------------------------

def library_version(dist: str) -> str:
    """The installed version of a distribution, or "" when it is not installed."""
    try:
        return version(dist)
    except PackageNotFoundError:
        return ""


def load_index(library: str, dist: str, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The name index of `library` for its installed version: read from ZOO_CACHE_DIR/index, or
    built once by `build()` (imports the library) and written atomically, refreshed when the
    installed version changes."""
    from zoo.io import cache_root

    ver = library_version(dist)
    if not ver:
        raise ZooError(f"{library} is not installed; pip install {dist}")
    path = cache_root() / "index" / f"{library}-{ver}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            pass  # rebuilt below
    index = {"library": library, "version": ver, **build()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(index))
        tmp.replace(path)
    except OSError:
        pass  # an unwritable cache only costs a rebuild next time
    return index


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder, as huggingface_hub resolves it (HF_HUB_CACHE,
    HF_HOME/hub, ~/.cache/huggingface/hub), without importing it."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def hf_cached_repos() -> dict[str, Path]:
    """Model repos in the HF cache with a snapshot: `org/repo` -> the snapshot `refs/main` names
    (else the newest one)."""
    out: dict[str, Path] = {}
    root = hf_hub_cache()
    if not root.is_dir():
        return out
    for entry in root.glob("models--*"):
        snaps = entry / "snapshots"
        if not snaps.is_dir():
            continue
        ref = entry / "refs" / "main"
        chosen = snaps / ref.read_text().strip() if ref.is_file() else None
        if chosen is None or not chosen.is_dir():
            found = sorted(snaps.iterdir(), key=lambda p: p.stat().st_mtime)
            chosen = found[-1] if found else None
        if chosen is not None:
            out["/".join(entry.name.split("--")[1:])] = chosen
    return out


def listing_row(model_id: str, present: bool, description: str) -> dict[str, Any]:
    """One `zoo list PATTERN` row of a generic family."""
    return {"id": model_id, "weights": "local" if present else "-", "description": description}


def search_index(family: str, idx: dict[str, Any], pattern: str,
                 architecture: str) -> list[dict[str, Any]]:
    """`zoo list` rows for the `family/<arch>` and `family/<arch>.<tag>` ids of a library's name
    index (`archs`, and `pretrained` tags with their HF hub id) that match `pattern`; a tag's
    weights are local when its hub repo is cached, and `architecture` describes a bare arch."""
    cached = set(hf_cached_repos())
    prefix = f"{family}/"
    ids = [prefix + a for a in idx["archs"]] + [prefix + n for n in idx["pretrained"]]
    rows = []
    for model_id in sorted(glob_match(ids, pattern)):
        entry = idx["pretrained"].get(model_id[len(prefix):])
        rows.append(listing_row(model_id, bool(entry and entry["hub"] in cached),
                                f"{family} pretrained tag" if entry else architecture))
    return rows


def arch_and_tag(family: str, idx: dict[str, Any], rest: str) -> tuple[str, str]:
    """`<arch>[.<tag>]` split and checked against the family's index (its `archs` and its
    `pretrained` `<arch>.<tag>` names): an unknown one is an error listing close names."""
    arch, _, tag = rest.partition(".")
    if arch not in idx["archs"]:
        raise UnknownNameError(f"{family} architecture", arch, idx["archs"],
                               f"See `zoo list '{family}/*'`")
    tags = [n.partition(".")[2] for n in idx["pretrained"] if n.partition(".")[0] == arch]
    if tag and tag not in tags:
        raise UnknownNameError(f"pretrained tag of {family}/{arch}", tag, tags)
    return arch, tag
