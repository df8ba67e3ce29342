"""`hf/<org>/<repo>`: a transformers vision backbone from the local Hugging Face cache.

Layers: `hidden_states.<i>` as transformers returns them with `output_hidden_states=True` (the
embeddings, then every layer; Swin-like models' `reshaped_hidden_states` as NCHW maps), then
`pooler_output` where the model has one. CLIP/SigLIP-style repos use their vision tower. Prefix
tokens (class, distillation, registers) are counted from the embeddings the config built.
Preprocessing: the repo's own image processor (preprocessor_config.json) run by transformers.

Weights and config come only from the HF cache (or --weights FOLDER): never downloaded. With
--random-init and no cached config.json, the model is built from transformers' default config of
the model type the repo name names (the longest transformers model type in it: `dinov2-small`
-> `dinov2`, at that type's default size), with the type's default image processor; a test or a
user who wants the exact small config writes it to the cache with `save_pretrained`.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zoo import hookimpl
from zoo.errors import ZooError
from zoo.plugin import CachedWeights, find_weights, load_options, quiet_transformers
from zoo.plugins._generic import (
    PlanRow,
    channels_last,
    hf_cached_repos,
    layers_without_weights,
    library_version,
    listing_row,
    make_model,
    seeded,
)
from zoo.registry.families import ModelFamily, glob_match
from zoo.registry.specs import InputConfig, LayerInfo, ModelSpec


def _transformers_repos() -> dict[str, dict[str, Any]]:
    """Cached repos whose config.json is a transformers config (timm/open_clip repos are not)."""
    out = {}
    for repo, snap in hf_cached_repos().items():
        try:
            cfg = json.loads((snap / "config.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if "model_type" in cfg:
            out[repo] = cfg
    return out


def search(pattern: str) -> list[dict[str, Any]]:
    """Cached transformers repos matching `pattern` (`hf/*`)."""
    repos = _transformers_repos()
    ids = {f"hf/{r}": c for r, c in repos.items()}
    return [listing_row(i, True, f"transformers {ids[i]['model_type']} (HF cache)")
            for i in sorted(glob_match(list(ids), pattern))]


def resolve(rest: str) -> ModelSpec:
    """The spec of `hf/<org>/<repo>`: config and processor from the cache, else (random init)
    the defaults of the model type its name names."""
    if rest.count("/") != 1:
        raise ZooError(f"hf/{rest}: name a Hugging Face repo as hf/<org>/<repo>")
    snapshot = hf_cached_repos().get(rest)
    folder = snapshot if snapshot and (snapshot / "config.json").is_file() else None
    config = _config(rest, folder)
    input = _input(config, folder)

    def layers() -> list[LayerInfo]:
        return layers_without_weights(lambda: _build(config), plan, extract, input.size)

    return ModelSpec("hf", rest, _loader(config), layers, input=input,
                     weights=f"HF cache {rest}",
                     description=f"transformers {config.model_type}" +
                     ("" if folder else " (default config of the type: no cached config.json)"),
                     sources=(CachedWeights(rest, folder=True),))


def _config(repo: str, folder: Path | None) -> Any:
    from transformers import CONFIG_MAPPING, AutoConfig

    if folder is not None:
        return AutoConfig.from_pretrained(str(folder), local_files_only=True)
    model_type = default_type(repo.split("/")[1], list(CONFIG_MAPPING.keys()))
    if model_type is None:
        raise ZooError(f"hf/{repo}: no config.json in the Hugging Face cache "
                       f"({hf_cache_hint()}) and no transformers model type in its name; put the "
                       "repo in the cache (save_pretrained / huggingface-cli download elsewhere)")
    return AutoConfig.for_model(model_type)


def default_type(repo: str, types: Sequence[str]) -> str | None:
    """The longest transformers model type named in a repo name (`-`, `_` ignored)."""
    norm = repo.lower().replace("-", "").replace("_", "")
    hits = [t for t in types if t.replace("-", "").replace("_", "") in norm]
    return max(hits, key=len) if hits else None


def hf_cache_hint() -> str:
    from zoo.plugins._generic import hf_hub_cache

    return str(hf_hub_cache())


def _input(config: Any, folder: Path | None) -> InputConfig:
    """The repo's image processor, else the default one of the model type (written once to
    ZOO_CACHE_DIR, so transformers' own processor runs it)."""
    from zoo.model.transforms import processor_input

    if folder is not None and (folder / "preprocessor_config.json").is_file():
        return processor_input(folder)
    return processor_input(_default_processor(config.model_type))


def _default_processor(model_type: str) -> Path:
    from zoo.io import cache_root

    target = (cache_root() / "hf-processors" / library_version("transformers") / model_type)
    if not (target / "preprocessor_config.json").is_file():
        from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES

        names = IMAGE_PROCESSOR_MAPPING_NAMES.get(model_type)
        if not names:
            raise ZooError(f"transformers has no image processor for model type {model_type!r}")
        name = (names.get("torchvision") or names.get("pil")) if isinstance(names, dict) \
            else names[0]
        import transformers

        getattr(transformers, name)().save_pretrained(str(target))
    return target


def _build(config: Any) -> Any:
    """AutoModel from the config (its vision tower for text-image models)."""
    from transformers import AutoModel

    with quiet_transformers():
        model = AutoModel.from_config(config)
    return _vision(model)


def _vision(model: Any) -> Any:
    return model.vision_model if hasattr(model, "vision_model") else model


def prefix_tokens(model: Any) -> int:
    """Class, distillation and register tokens of the embeddings the config built."""
    emb = getattr(model, "embeddings", None)
    n = sum(getattr(emb, a, None) is not None for a in ("cls_token", "distillation_token"))
    n += int(getattr(emb, "class_embedding", None) is not None)
    reg = getattr(emb, "register_tokens", None)
    return n + (int(reg.shape[1]) if reg is not None else 0)


def _hidden(model: Any, x: Any) -> Any:
    kwargs: dict[str, Any] = {"output_hidden_states": True}
    if "interpolate_pos_encoding" in inspect.signature(model.forward).parameters:
        kwargs["interpolate_pos_encoding"] = True
    return model(pixel_values=x, **kwargs)


def plan(model: Any) -> list[PlanRow]:
    """hidden_states.0 (embeddings) .. hidden_states.L, then pooler_output when present."""
    config = model.config
    n = getattr(config, "num_hidden_layers", None)
    if n is None:
        depths = getattr(config, "depths", None)
        n = len(depths) if depths else getattr(config, "num_stages", None)
    if n is None:
        raise ZooError(f"transformers {config.model_type}: cannot count its hidden states")
    prefix = prefix_tokens(model)
    blocks = _block_list(model, n)
    modules = dict(model.named_modules())
    rows = [PlanRow(f"hidden_states.{i}",
                    ("embeddings" if "embeddings" in modules else "") if i == 0 else
                    (f"{blocks}.{i - 1}" if blocks else ""),
                    "stem" if i == 0 else "encoder", prefix) for i in range(n + 1)]
    if _has_pooler(model):
        rows.append(PlanRow("pooler_output", "pooler" if "pooler" in modules else "",
                            "embedding"))
    return rows


def _block_list(model: Any, n: int) -> str:
    """The module path of the encoder's list of `n` layers/stages ("" when there is none)."""
    import torch

    return next((name for name, m in model.named_modules()
                 if isinstance(m, torch.nn.ModuleList) and len(m) == n
                 and name.startswith("encoder")), "")


def _has_pooler(model: Any) -> bool:
    return any(n in ("pooler", "post_layernorm", "head") for n, _ in model.named_children()) or \
        hasattr(model, "pooler")


def extract(model: Any, x: Any, rows: Sequence[PlanRow]) -> dict[str, Any]:
    """One forward with output_hidden_states=True; the rows' states channels-last."""
    out = _hidden(model, x)
    states = getattr(out, "reshaped_hidden_states", None) or out.hidden_states
    feats = {}
    for r in rows:
        if r.name == "pooler_output":
            pooled = getattr(out, "pooler_output", None)
            if pooled is None:
                raise ZooError("this model returns no pooler_output")
            feats[r.name] = pooled.flatten(1)
        else:
            feats[r.name] = channels_last(r, states[int(r.name.split(".")[1])])
    return feats


def _loader(config: Any) -> Callable[..., Any]:
    def load(spec: ModelSpec, weights: str | None = None, random_init: bool = False,
             device: str = "cpu", **options: Any) -> Any:
        import torch
        from transformers import AutoModel

        opts = load_options(spec, options)
        source = find_weights(spec, weights, random_init, opts, spec.sources,
                              accepts="a transformers model folder (config.json + weights)")
        if source.random_init:
            model = seeded(lambda: _build(config))
        else:
            with quiet_transformers():
                model = _vision(AutoModel.from_pretrained(
                    str(source.path), local_files_only=True, dtype=torch.float32))
            source = source.detected(f"transformers {config.model_type} folder")
        input = opts.input(spec)
        rows = plan(model)
        layers = spec.layers() if input.size == spec.input.size else layers_without_weights(
            lambda: _build(config), plan, extract, input.size)
        prov = {"library": "transformers", "model_type": config.model_type,
                "config": config.name_or_path or f"{type(config).__name__}() defaults: no "
                "cached config.json, so not the repo's own sizes"}
        return make_model(spec, model.float(), layers, rows, extract, "output_hidden_states",
                          source, input, device, prov)

    return load


@hookimpl
def register_model_families(register: Callable[[ModelFamily], None]) -> None:
    register(ModelFamily("hf", resolve, search,
                         description="a transformers vision backbone: hf/<org>/<repo>",
                         example="hf/facebook/dinov2-small"))
