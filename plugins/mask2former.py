"""`mask2former`: Mask2Former (transformers) with a Swin-B backbone, 100 queries, 2 labels, 128 px,
as in the UNet++ vs Mask2Former study (facebook/mask2former-swin-base-IN21k-ade-semantic config,
written here in code so building it never needs the network).

Three parts, told apart by module path (never by the substring "encoder": the pixel decoder has
an encoder too): the Swin backbone (role encoder), the pixel decoder (pixel_decoder: its deformable
encoder layers, multi-scale outputs and mask features) and the transformer decoder (query_decoder:
each layer's query states, NQC, and the mask embedder once per decoder layer, `mask_embedder@k`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from zoo import InputConfig, LayerInfo, ModelSpec, hookimpl
from zoo.plugin import (
    CachedWeights,
    Segmentation,
    WeightSource,
    build_seeded,
    find_weights,
    in_order,
    load_options,
    segmentation_size,
    unwrap_checkpoint,
    wrap_model,
)

# the study's preprocessing (random init, state dicts): Resize 128 + CenterCrop 128, bilinear,
# ImageNet mean/std; a transformers folder: its image processor's scale, filter and mean/std
INPUT = InputConfig(size=128)
CACHED = CachedWeights("facebook/mask2former-swin-base-IN21k-ade-semantic", ("config.json",),
                       folder=True, format="transformers folder")
ACCEPTS = ("a Mask2FormerForUniversalSegmentation folder from save_pretrained, or its state dict "
           "(.safetensors/.bin/.pth)")

BACKBONE = "model.pixel_level_module.encoder"
PIXEL_DECODER = "model.pixel_level_module.decoder"
QUERY_DECODER = "model.transformer_module"
ROLE_OF_PART = ((BACKBONE, "encoder"), (PIXEL_DECODER, "pixel_decoder"),
                (QUERY_DECODER, "query_decoder"))
BACKBONE_STRIDES = (4, 8, 16, 32)  # the Swin stages' feature_maps
MULTI_SCALE_STRIDES = (32, 16, 8)  # the pixel decoder's multi_scale_features, low to high res
CLASS_HEAD = ("class_predictor.", "criterion.")  # replaced when the label count changes
# Config fields that shape the layers: a checkpoint folder must agree on them (labels may differ).
BACKBONE_FIELDS = ("embed_dim", "depths", "num_heads", "window_size")
DECODER_FIELDS = ("hidden_dim", "feature_size", "mask_feature_size", "num_queries",
                  "encoder_layers", "decoder_layers", "num_attention_heads",
                  "encoder_feedforward_dim", "dim_feedforward")


@dataclass(frozen=True)
class M2FArch:
    """The numbers of a Mask2Former with a Swin backbone (hidden = feature = mask feature size)."""

    embed_dim: int = 128
    depths: tuple[int, ...] = (2, 2, 18, 2)
    heads: tuple[int, ...] = (4, 8, 16, 32)
    window: int = 12
    hidden: int = 256
    queries: int = 100
    encoder_layers: int = 6
    decoder_layers: int = 10  # the initial queries + 9 masked-attention layers
    attention_heads: int = 8
    encoder_ffn: int = 1024
    decoder_ffn: int = 2048
    num_labels: int = 2
    size: int = 128

    def tiny(self) -> M2FArch:
        """Same architecture, narrow and shallow (2 decoder layers), 64 px (for tests)."""
        return replace(self, embed_dim=16, depths=(2, 2, 2, 2), heads=(1, 2, 2, 4), window=4,
                       hidden=32, queries=8, encoder_layers=2, decoder_layers=3,
                       attention_heads=2, encoder_ffn=64, decoder_ffn=64, size=64)

    def config(self) -> Any:
        """The transformers Mask2FormerConfig (with its SwinConfig backbone), built offline."""
        from transformers import Mask2FormerConfig, SwinConfig

        backbone = SwinConfig(image_size=384, patch_size=4, embed_dim=self.embed_dim,
                              depths=list(self.depths), num_heads=list(self.heads),
                              window_size=self.window, drop_path_rate=0.3,
                              out_features=["stage1", "stage2", "stage3", "stage4"])
        return Mask2FormerConfig(
            backbone_config=backbone, num_labels=self.num_labels, hidden_dim=self.hidden,
            feature_size=self.hidden, mask_feature_size=self.hidden, num_queries=self.queries,
            encoder_layers=self.encoder_layers, decoder_layers=self.decoder_layers,
            num_attention_heads=self.attention_heads, encoder_feedforward_dim=self.encoder_ffn,
            dim_feedforward=self.decoder_ffn)


SWIN_BASE = M2FArch()


def role_of(module: str) -> str:
    """The part a module path belongs to: backbone, pixel decoder or transformer decoder."""
    for prefix, role in ROLE_OF_PART:
        if module == prefix or module.startswith(prefix + "."):
            return role
    raise ValueError(f"module {module!r} is in no Mask2Former part")


def layers_for(arch: M2FArch) -> list[LayerInfo]:
    """Backbone stages, pixel-decoder encoder layers, multi-scale outputs and mask features, then
    the query states of every decoder layer interleaved with the mask embedder's calls
    (`mask_embedder@0` sees the learned initial queries: the same for every image)."""
    def maps(channels: int, stride: int) -> dict[str, Any]:
        return dict(layout="NCHW", channels=channels, stride=stride)

    queries = dict(layout="NQC", channels=arch.hidden)
    pixel = f"{PIXEL_DECODER}."
    rows: list[tuple[str, str, dict[str, Any]]] = [
        (f"backbone.stage{k + 1}", BACKBONE, maps(arch.embed_dim * 2 ** k, stride))
        for k, stride in enumerate(BACKBONE_STRIDES)]
    # multi-scale tokens (strides 32, 16, 8 concatenated): no single grid, hence no stride
    rows += [(f"pixel_decoder.layer{i}", f"{pixel}encoder.layers.{i}",
              dict(layout="NLC", channels=arch.hidden)) for i in range(arch.encoder_layers)]
    rows += [(f"pixel_decoder.s{s}", PIXEL_DECODER, maps(arch.hidden, s))
             for s in MULTI_SCALE_STRIDES]
    rows += [("pixel_decoder.s4", f"{pixel}layer_1", maps(arch.hidden, 4)),
             ("mask_features", f"{pixel}mask_projection", maps(arch.hidden, 4))]
    embedder = f"{QUERY_DECODER}.decoder.mask_predictor.mask_embedder"
    for k in range(arch.decoder_layers):
        if k:
            rows.append((f"query.layer{k}", f"{QUERY_DECODER}.decoder.layers.{k - 1}", queries))
        rows.append((f"mask_embedder@{k}", embedder, dict(queries, call=k)))
    return in_order([(name, module, role_of(module), fields) for name, module, fields in rows])


@functools.cache
def _model_class() -> type:
    """Mask2Former's ZooModel (defined on first load: zoo.model.base imports torch)."""
    import torch

    from zoo.model.base import ZooModel

    class Mask2FormerModel(Segmentation, ZooModel):
        """Picks single maps out of the backbone's and pixel decoder's outputs, turns the decoder
        layers' sequence-first (Q, N, C) query states batch-first; a zoo.study.train Segmenter whose
        --freeze-encoder freezes the Swin backbone only."""

        frozen_part = BACKBONE

        def convert(self, info: LayerInfo, output: Any) -> Any:
            if info.module == BACKBONE:
                output = output.feature_maps[BACKBONE_STRIDES.index(info.stride)]
            elif info.module == PIXEL_DECODER:
                output = output.multi_scale_features[MULTI_SCALE_STRIDES.index(info.stride)]
            elif info.module.startswith(f"{QUERY_DECODER}.decoder.layers."):
                return output[0].transpose(0, 1)
            return super().convert(info, output)

        def segmentation_logits(self, x: Any) -> Any:
            """(N, H, W) foreground-vs-background log-odds of the semantic map (class-weighted
            query masks, as transformers' semantic post-processing), at input resolution."""
            import torch
            import torch.nn.functional as F

            from zoo.errors import ZooError

            if self.module.config.num_labels != 2:
                raise ZooError(f"{self.id} has {self.module.config.num_labels} labels; binary "
                               "segmentation needs 2: load it with --option labels=2 (a new "
                               "class head)")
            out = self.module(pixel_values=x)
            classes = out.class_queries_logits.softmax(-1)[..., :-1]  # drop "no object"
            semantic = torch.einsum("nqc,nqhw->nchw", classes, out.masks_queries_logits.sigmoid())
            semantic = F.interpolate(semantic, size=x.shape[-2:], mode="bilinear",
                                     align_corners=False).clamp_min(1e-6).log()
            return semantic[:, 1] - semantic[:, 0]

        def segmentation_loss(self, x: Any, masks: Any, kind: str) -> Any:
            """Mask2Former's own loss (Hungarian-matched mask BCE + Dice + class CE): each image
            contributes a background (label 0) and a foreground (label 1) segment, whichever is
            non-empty. `kind` must be the default: pixel-logit losses do not apply to queries."""
            from zoo.errors import ZooError

            if kind != "bce-dice":
                raise ZooError(f"{self.id} trains with its own matched-query loss; --loss "
                               f"{kind} applies to pixel-logit models such as unetpp")
            mask_labels, class_labels = [], []
            for m in masks:
                segments = [(label, seg) for label, seg in ((0, 1 - m), (1, m)) if seg.any()]
                mask_labels.append(torch.stack([seg for _, seg in segments]).float())
                class_labels.append(torch.tensor([label for label, _ in segments],
                                                 device=m.device))
            return self.module(pixel_values=x, mask_labels=mask_labels,
                               class_labels=class_labels).loss

    return Mask2FormerModel


def _check_config(config: Any, arch: M2FArch, where: Path) -> None:
    """A checkpoint's config must give the layers this spec lists; only the labels may differ."""
    from zoo.errors import WeightsError

    def value(cfg: Any, field: str) -> Any:
        v = getattr(cfg, field, None)
        return list(v) if isinstance(v, (list, tuple)) else v

    expected = arch.config()
    pairs = [(expected.backbone_config, config.backbone_config, f) for f in BACKBONE_FIELDS]
    pairs += [(expected, config, f) for f in DECODER_FIELDS]
    diffs = [f"{f} {value(theirs, f)} (expected {value(ours, f)})"
             for ours, theirs, f in pairs if value(ours, f) != value(theirs, f)]
    if diffs:
        raise WeightsError(f"{where} is a different Mask2Former: {', '.join(diffs)}")


def processor_scale(folder: Path, study: InputConfig) -> InputConfig:
    """The `study` transform at the scale, filter and mean/std of a folder's Mask2Former image
    processor, if it has one (its shortest edge rounded up to its size divisor 32; a square
    centre crop, so every image gives the same grid)."""
    from zoo.model.transforms import PIL_FILTERS

    try:
        raw = json.loads((folder / "preprocessor_config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return study
    size = raw.get("size", study.size)
    edge = int(size.get("shortest_edge", study.size) if isinstance(size, dict) else size)
    return replace(study, size=-(-edge // 32) * 32,
                   mean=tuple(raw.get("image_mean", study.mean)),
                   std=tuple(raw.get("image_std", study.std)),
                   interpolation=PIL_FILTERS.get(raw.get("resample", 2), "bilinear"))


def input_for(fmt: str, path: Path | None = None) -> InputConfig:
    """The transform weights at `path` get: a folder's image-processor scale, else the study's."""
    return processor_scale(Path(path), INPUT) if path is not None and Path(path).is_dir() \
        else INPUT


def _pretrained_args(source: WeightSource, arch: M2FArch, labels: int | None
                     ) -> tuple[dict, bool]:
    """from_pretrained arguments for a folder (its config, checked) or a state-dict file (our
    config, the file's label count), and whether the class head is replaced (`labels` differs)."""
    from zoo.errors import WeightsError

    path = Path(source.path)
    if path.is_dir():
        from transformers import Mask2FormerConfig

        try:
            config = Mask2FormerConfig.from_pretrained(path, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - no or broken config.json
            raise WeightsError(f"{path} is not a Mask2Former folder: {exc}") from None
        _check_config(config, arch, path)
        relabel = labels not in (None, config.num_labels)
        args: dict[str, Any] = dict(pretrained_model_name_or_path=path)
        if relabel:
            args.update(num_labels=labels, ignore_mismatched_sizes=True)
        return args, relabel
    state = unwrap_checkpoint(source.read(), str(path))
    if "class_predictor.weight" not in state:
        raise WeightsError(f"{path} is not a Mask2FormerForUniversalSegmentation state dict "
                           "(no class_predictor.weight)")
    found = state["class_predictor.weight"].shape[0] - 1
    relabel = labels not in (None, found)
    if relabel:
        state = {k: v for k, v in state.items() if not k.startswith(CLASS_HEAD)}
    return dict(pretrained_model_name_or_path=None, state_dict=state,
                config=replace(arch, num_labels=labels or found).config()), relabel


def _from_checkpoint(source: WeightSource, arch: M2FArch, labels: int | None) -> Any:
    """Load a folder or state dict offline with transformers (which renames older key layouts);
    a key left over or missing, other than a replaced class head, is a WeightsError."""
    from transformers import Mask2FormerForUniversalSegmentation as M2F

    from zoo.errors import WeightsError
    from zoo.model.pretrained import load_pretrained

    path = source.path
    args, relabel = _pretrained_args(source, arch, labels)
    folder = args.pop("pretrained_model_name_or_path")
    module, info = load_pretrained(  # a folder, or None with the file's state dict
        lambda *a, **kw: build_seeded(lambda: M2F.from_pretrained(*a, **kw)), folder,
        trust=source.trust, what=f"Mask2Former {'folder' if folder else 'state dict'} {path}",
        output_loading_info=True, **args)
    # not features: the backbone's unused final norm, the loss buffer, a replaced class head
    skip = CLASS_HEAD if relabel else ("criterion.",)
    problems = {
        "missing": sorted(k for k in info["missing_keys"]
                          if ".swin.layernorm." not in k and not k.startswith(skip)),
        "unexpected": sorted(info["unexpected_keys"]),
        "mis-shaped": sorted(k[0] for k in info["mismatched_keys"] if not k[0].startswith(skip))}
    if any(problems.values()):
        raise WeightsError(f"{path} does not fit the model: " + "; ".join(
            f"{label} {len(keys)}: {keys[:6]}" for label, keys in problems.items() if keys))
    return module


def _load(spec: ModelSpec, weights: str | None, random_init: bool, device: str,
          **options: Any) -> Any:
    """Mask2Former from a save_pretrained folder, a state dict, the HF cache, or random init.
    Options: `size` (input px, a multiple of 32), `labels` (class count; 2 at random init, else
    the checkpoint's; another value gives a new class head, e.g. labels=2 to fine-tune ADE)."""
    from transformers import Mask2FormerForUniversalSegmentation as M2F

    opts = load_options(spec, options, extra=("labels",))
    labels = opts.extra.get("labels")
    arch = SWIN_BASE.tiny() if opts.tiny else SWIN_BASE
    source = find_weights(spec, weights, random_init, opts, [CACHED], ACCEPTS)
    input = replace(INPUT, size=arch.size)
    if source.path is not None and source.path.is_dir():
        input = processor_scale(source.path, input)
    input = opts.input(input)
    arch = replace(arch, size=segmentation_size(spec, input.size))
    if source.path is None:
        module = build_seeded(lambda: M2F(replace(arch, num_labels=labels or 2).config()))
    else:
        module = _from_checkpoint(source, arch, labels)
        source = source.detected("transformers folder" if source.path.is_dir()
                                 else "transformers state dict")
    return wrap_model(spec, module, layers_for(arch), source, input, device, tiny=opts.tiny,
                      cls=_model_class())


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    register(ModelSpec("mask2former", "swin-base", _load, lambda: layers_for(SWIN_BASE),
                       tag="ade-semantic", input=INPUT, default=True, weights=CACHED.describe(),
                       sources=(CACHED,), input_for=input_for,
                       description="Mask2Former, Swin-B (IN21k) backbone, ADE20k semantic config, "
                                   "100 queries, 2 labels at random init, 128 px"))
