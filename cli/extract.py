"""`zoo extract`: run a model over a dataset and store reduced per-layer features."""

from __future__ import annotations

from typing import Annotated

import typer

from zoo.cli.common import (BatchOpt, DataOpt, DeviceOpt, JsonOpt, LayersOpt, NoCacheOpt,
                            RandomInitOpt, ReduceOpt, SkipBadOpt, WeightsOpt, load_data, out_dir,
                            print_json, print_table, progress_bar, split_list)
from zoo.cli.load_options import (CropPctOpt, SizeOpt, TrustWeightsOpt, WeightsSourceOpt,
                                  load_options)


def extract_cmd(model: Annotated[str, typer.Argument(help="model id or family")],
                data: DataOpt = "samples", layers: LayersOpt = None, reduce: ReduceOpt = "gap",
                weights: WeightsOpt = None, random_init: RandomInitOpt = False,
                device: DeviceOpt = "cpu", batch_size: BatchOpt = 16,
                out: Annotated[str | None, typer.Option("--out", "-o", help="also write "
                               "<layer>.npy + ids.json + manifest.json here")] = None,
                skip_bad: SkipBadOpt = False, no_cache: NoCacheOpt = False,
                size: SizeOpt = None, crop_pct: CropPctOpt = None,
                weights_source: WeightsSourceOpt = None, trust_weights: TrustWeightsOpt = False,
                json_: JsonOpt = False) -> None:
    """Extract features of MODEL's layers over a dataset into the feature cache."""
    from zoo.api import load
    from zoo.cache import FeatureCache
    from zoo.extraction import extract, select_layers
    from zoo.features import parse_reduction
    from zoo.io import write_json, write_npy
    from zoo.model import provenance_text

    parse_reduction(reduce)
    zmodel = load(model, weights=weights, random_init=random_init, device=device,
                  **load_options(size, crop_pct, weights_source, trust_weights))
    provenance = zmodel.provenance()
    names = select_layers(list(zmodel.layers), split_list(layers), zmodel.id)
    dataset = load_data(data, skip_bad)
    cache = None if no_cache else FeatureCache()
    with progress_bar() as progress:
        feats = extract(zmodel, dataset, names, reduce, batch_size, cache, progress)
    rows = [{"layer": n, "shape": list(f.data.shape), "layout": f.layout, "dtype": str(f.data.dtype)}
            for n, f in feats.items()]
    if out:
        folder = out_dir(out)
        for n, f in feats.items():
            write_npy(folder / f"{n}.npy", f.data)
        write_json(folder / "ids.json", next(iter(feats.values())).sample_ids)
        write_json(folder / "manifest.json", {"model": zmodel.id, "random_init": zmodel.random_init,
                                              "data": dataset.name, "reduction": reduce,
                                              "layers": rows, "provenance": provenance})
    summary = {"model": zmodel.id, "random_init": zmodel.random_init, "data": dataset.name,
               "samples": len(dataset), "reduction": reduce, "layers": rows,
               "cache": str(cache.root) if cache else None, "out": out,
               "provenance": provenance}
    if json_:
        print_json(summary)
        return
    note = " [random init]" if zmodel.random_init else ""
    print(provenance_text(provenance))
    print_table(f"{zmodel.id}{note} on {dataset.name} ({len(dataset)} samples, {reduce})",
                ["layer", "shape", "layout"], [[r["layer"], r["shape"], r["layout"]] for r in rows])
    print(f"cached under {cache.root}" if cache else "not cached (--no-cache)")
    if out:
        print(f"wrote {len(rows)} arrays to {out}")


def register(app: typer.Typer) -> None:
    app.command("extract")(extract_cmd)
