"""`zoo extract`: run a model over a dataset and store reduced per-layer features."""

from __future__ import annotations

from typing import Annotated

import typer

from zoo.cli.common import (
    BatchOpt,
    CropPctOpt,
    DataOpt,
    DeviceOpt,
    JsonOpt,
    LayersOpt,
    LoaderWorkersOpt,
    NoCacheOpt,
    OverwriteOpt,
    PrecisionOpt,
    RandomInitOpt,
    ReduceOpt,
    SizeOpt,
    SkipBadOpt,
    TrustWeightsOpt,
    WeightsOpt,
    WeightsSourceOpt,
    load_data,
    load_options,
    print_json,
    print_table,
    progress_bar,
    split_list,
)


def extract_cmd(model: Annotated[str, typer.Argument(help="model id or family")],
                data: DataOpt = "samples", layers: LayersOpt = None,
                reduction: ReduceOpt = "gap", weights: WeightsOpt = None,
                random_init: RandomInitOpt = False, device: DeviceOpt = "cpu",
                batch_size: BatchOpt = 16,
                out: Annotated[str | None, typer.Option("--out", "-o", help="also write "
                               "<layer>.npy + ids.json + manifest.json here")] = None,
                overwrite: OverwriteOpt = False, skip_bad: SkipBadOpt = False,
                no_cache: NoCacheOpt = False, size: SizeOpt = None,
                crop_pct: CropPctOpt = None, weights_source: WeightsSourceOpt = None,
                trust_weights: TrustWeightsOpt = False,
                dtype: Annotated[str, typer.Option("--dtype", help="stored precision: float32, "
                                 "or float16 to halve the cache")] = "float32",
                loader_workers: LoaderWorkersOpt = 0, precision: PrecisionOpt = "fp32",
                json_: JsonOpt = False) -> None:
    """Extract features of MODEL's layers over a dataset into the feature cache."""
    from zoo.api import extract, load
    from zoo.features.layers import parse_reduction
    from zoo.io import check_output_folder
    from zoo.model.base import provenance_text

    parse_reduction(reduction)
    dataset = load_data(data, skip_bad)
    if out:
        check_output_folder(out, overwrite)
    zmodel = load(model, weights=weights, random_init=random_init, device=device,
                  **load_options(size, crop_pct, weights_source, trust_weights))
    with progress_bar() as progress:
        feats = extract(zmodel, dataset, split_list(layers), reduction, batch_size=batch_size,
                        cache=not no_cache, dtype=dtype, progress=progress,
                        workers=loader_workers, precision=precision)
    if out:
        feats.save(out, overwrite)
    states = {n: feats[n].meta.get("cache", "off") for n in feats.names}
    summary = {**feats.to_dict(), "cached": "off" not in states.values(), "cache": states,
               "out": out}
    if json_:
        print_json(summary)
        return
    print(provenance_text(feats.provenance))
    print_table(f"{feats.label} on {dataset.name} ({len(dataset)} samples, {reduction})",
                ["layer", "shape", "layout"],
                [[r["layer"], r["shape"], r["layout"]] for r in feats.rows()])
    print(cache_note(list(states.values())))
    if out:
        print(f"wrote {len(feats)} arrays to {out}")


def cache_note(states: list[str]) -> str:
    """What the feature cache did: how many layers were read from it, computed and stored."""
    hits, stored = states.count("hit"), states.count("stored")
    if hits == stored == 0:
        return "feature cache: not used (--no-cache, or weights without a fingerprint)"
    return f"feature cache: {hits} layer(s) read, {stored} computed and stored"


def register(app: typer.Typer) -> None:
    app.command("extract")(extract_cmd)
