"""The zoo matrix: every (model, layer) against every other under one metric, run as a
resumable `zoo.comparisons.plan` plan (sharded across processes, GPUs or nodes), assembled into a
`MatrixResult` that carries its labels, baseline, best matches and smoothness profiles."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.engine.results import reason_counts, tidy_rows, value_scale
from zoo.errors import ZooError
from zoo.result import Result

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from zoo.comparisons.plan import Plan
    from zoo.data.dataset import Dataset
    from zoo.progress import Progress
    from zoo.registry.specs import LayerInfo


@dataclass(repr=False)
class MatrixResult(Result):
    """The assembled matrix: `labels[i]` = {model, layer, role, depth} of row/column i."""

    metric: Any
    labels: list[dict[str, Any]]
    values: np.ndarray
    reasons: np.ndarray
    n: int
    data: str
    reduction: str
    random_init: bool
    run: Path
    baseline: np.ndarray | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    marker = "matrix.json"

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(lab["model"] for lab in self.labels))

    @property
    def baseline_mean(self) -> float | None:
        """The expected value for unrelated data, averaged over pairs (cka only)."""
        return None if self.baseline is None else float(np.nanmean(self.baseline))

    @property
    def note(self) -> str:
        return " [random init]" if self.random_init else ""

    def names(self) -> list[str]:
        """`model:layer` for every row/column."""
        return [f"{lab['model']}:{lab['layer']}" for lab in self.labels]

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows, one per cell (see `zoo.engine.results.tidy_rows`)."""
        stats = {"baseline": self.baseline} if self.baseline is not None else None
        return tidy_rows(self.metric.name, self.values, self.reasons, self.labels, self.labels,
                         n=self.n, reduction=self.reduction, stats=stats)

    def table(self) -> pd.DataFrame:
        """The tidy DataFrame of every cell."""
        import pandas as pd

        return pd.DataFrame(self.rows())

    def heatmap(self, scale: str = "fixed") -> Figure:
        """The whole matrix with model blocks, values and undefined reasons (a Figure)."""
        from zoo.report.figures import heatmap_figure

        names = self.names()
        blocks = [lab["model"] for lab in self.labels]
        note = ""
        if self.baseline is not None:
            note = (f"Expected {self.metric.name} for unrelated data at n={self.n}: "
                    f"{np.nanmean(self.baseline):.3f} on average.")
        return heatmap_figure(self.values, names, names, blocks, blocks,
                              f"{self.metric.name} across {len(self.models)} models{self.note} "
                              f"(n={self.n}, {self.reduction})", "model:layer", "model:layer",
                              reasons=self.reasons,
                              scale=value_scale(self.metric, self.values) if scale == "fixed"
                              else None, note=note)

    def smoothness(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per model, how much the representation changes from a layer to the next (1 -
        similarity, or the distance) at their mean relative depth: {model: (depth, change)}."""
        similarity = self.metric.kind == "similarity"
        out = {}
        for model in self.models:
            idx = [g for g, lab in enumerate(self.labels) if lab["model"] == model]
            step = np.array([self.values[g, h] for g, h in zip(idx, idx[1:])])
            depth = np.array([(self.labels[g]["depth"] + self.labels[h]["depth"]) / 2
                              for g, h in zip(idx, idx[1:])])
            out[model] = (depth, 1.0 - step if similarity else step)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary (matrix.json without the values)."""
        from zoo.report.matrix import matrix_summary

        return matrix_summary(self)

    def headline(self) -> str:
        return (f"{self.metric.name} across {', '.join(self.models)}{self.note}: "
                f"{len(self.labels)} layers, n={self.n}")

    @classmethod
    def load(cls, folder: str | Path) -> MatrixResult:
        """A matrix saved by `save` (matrix.json); `load_matrix` assembles a run folder."""
        import json

        from zoo.metrics import get

        info = json.loads((Path(folder) / "matrix.json").read_text())
        values = np.array(info["values"], dtype=float)
        baseline = None if info["baseline"] is None else np.array(info["baseline"], dtype=float)
        return cls(get(info["metric"]), info["layers"], values,
                   np.array(info["reasons"], dtype=object), info["n"], info["data"],
                   info["reduction"], info["random_init"], Path(info["run"]), baseline,
                   info["provenance"])

    def best_matches(self) -> pd.DataFrame:
        """For every layer, its best-matching layer in each other model."""
        import pandas as pd

        return pd.DataFrame(self.best_match_rows())

    def best_match_rows(self) -> list[dict[str, Any]]:
        """`best_matches` as one dict per (layer, other model), for JSON and reports."""
        better = np.nanargmin if self.metric.kind == "distance" else np.nanargmax
        out = []
        for i, lab in enumerate(self.labels):
            for model in self.models:
                if model == lab["model"]:
                    continue
                idx = [g for g, other in enumerate(self.labels) if other["model"] == model]
                row = self.values[i, idx]
                if np.isnan(row).all():
                    out.append({"model": lab["model"], "layer": lab["layer"], "in": model,
                                "best": "", "value": None, "reason": str(self.reasons[i, idx[0]])})
                    continue
                j = idx[int(better(row))]
                out.append({"model": lab["model"], "layer": lab["layer"], "in": model,
                            "best": self.labels[j]["layer"], "value": float(self.values[i, j]),
                            "reason": ""})
        return out

    def reason_counts(self) -> dict[str, int]:
        """How many undefined cells each reason explains."""
        return reason_counts(self.reasons, self.values)

    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        """matrix.csv/json/png, smoothness.png and report.html, written as one folder."""
        from zoo.report.matrix import write_matrix

        return write_matrix(self, folder, overwrite)


def matrix_plan(names: Sequence[str], dataset: Dataset, metric: Any, *,
                layers: Sequence[str] | None = None, reduction: str = "gap",
                random_init: bool = False, weights: dict[str, str] | None = None,
                batch_size: int = 16, samples_per_unit: int = 1024, block: int = 64,
                skip_broken: bool = False, options: dict[str, Any] | None = None) -> Plan:
    """The plan for these models: each model's layers (ordered by depth) that `layers` picks
    (the rule of `zoo.model.selection`: a pattern must match in some model, each model keeps
    a layer).
    With `skip_broken` (`--all`), a family whose plugin fails is skipped with a warning;
    `options` (e.g. size, crop_pct) are load options for every model."""
    from zoo.comparisons.plan import make_plan
    from zoo.model.selection import select_for
    from zoo.registry.host import get_registry

    registry = get_registry()
    infos: dict[str, dict[str, LayerInfo]] = {}
    for name in names:
        spec = registry.model(name, prefer_trained=not (random_init or (weights or {}).get(name)))
        try:
            infos[spec.id] = {i.name: i for i in spec.layers()}
        except ZooError as exc:
            if not skip_broken:
                raise
            print(f"zoo: warning: skipping {spec.id}: {exc}", file=sys.stderr)
    picked = select_for({mid: list(layer_infos) for mid, layer_infos in infos.items()}, layers)
    chosen = [(mid, [i.as_dict() for i in sorted((infos[mid][n] for n in names_),
                                                  key=lambda i: i.depth)])
              for mid, names_ in picked.items()]
    resolved = {registry.model(n, prefer_trained=False).id: w
                for n, w in (weights or {}).items()}
    unknown = sorted(set(resolved) - {mid for mid, _ in chosen})
    if unknown:
        raise ZooError(f"weights given for {unknown}, which are not among the models")
    data = {"name": dataset.name, "fingerprint": dataset.fingerprint, "n": len(dataset)}
    return make_plan(chosen, data, metric.name, symmetric=bool(getattr(metric, "symmetric",
                     False)), params=dict(getattr(metric, "bound", {})), reduction=reduction,
                     random_init=random_init,
                     weights={m: str(Path(w).expanduser().resolve()) for m, w in resolved.items()},
                     load_options=options,
                     batch_size=batch_size, samples_per_unit=samples_per_unit,
                     layers_per_block=block)


def default_run(plan: Plan) -> Path:
    """A run folder per plan in the cache, so an interrupted matrix resumes."""
    from zoo.io import cache_root

    return cache_root() / "runs" / plan.key


def open_matrix(names: Sequence[str], dataset: Dataset, metric: str | Any, *,
                layers: Sequence[str] | None = None, reduction: str = "gap",
                random_init: bool = False, weights: dict[str, str] | None = None,
                batch_size: int = 16, run: str | Path | None = None,
                samples_per_unit: int = 1024, block: int = 64, skip_broken: bool = False,
                options: dict[str, Any] | None = None) -> tuple[Plan, Path]:
    """Start or reopen the run folder of this matrix (default: one per plan in the cache)."""
    from zoo.comparisons.plan import open_run
    from zoo.metrics import get

    if not names:
        raise ZooError("name at least one model")
    plan = matrix_plan(names, dataset, get(metric), layers=layers, reduction=reduction,
                       random_init=random_init, weights=weights, batch_size=batch_size,
                       samples_per_unit=samples_per_unit, block=block, skip_broken=skip_broken,
                       options=options)
    folder = Path(run) if run else default_run(plan)
    return open_run(folder, plan), folder


def run_matrix(names: Sequence[str], dataset: Dataset, metric: str | Any, *,
               device: str = "cpu", shard: tuple[int, int] = (0, 1), wait: float = 0.0,
               cache: bool = True, progress: Progress | None = None,
               **options: Any) -> MatrixResult | None:
    """Run (or resume) this process's share of the matrix (`options` as `open_matrix`); with
    one shard, or once every shard has finished, assemble and return the result (else None)."""
    import shutil
    import tempfile

    from zoo.comparisons.plan import missing_units, run_shard

    odd = [n for n in names if not isinstance(n, str)]
    if odd:  # the plan's workers load models by id, in other processes
        raise ZooError(f"the matrix takes model ids (see `zoo list`), got a "
                       f"{type(odd[0]).__name__}; compare a zoo.wrap(...) model with "
                       "zoo.compare(zoo.extract(model, data), ...)")
    scratch = None if cache or options.get("run") else tempfile.mkdtemp(prefix="zoo-run-")
    plan, folder = open_matrix(names, dataset, metric, **{**options, "run": options.get("run")
                                                            or scratch})
    try:
        run_shard(plan, folder, *shard, dataset=dataset, device=device, wait=wait,
                  progress=progress, cache=cache)
        return None if missing_units(plan, folder) else load_matrix(folder)
    finally:
        if scratch:  # without the cache, nothing of the run is kept
            shutil.rmtree(scratch, ignore_errors=True)


def worker_count(workers: str, device: str) -> int:
    """`--workers`: auto is one per visible GPU for CUDA, else one per CPU core."""
    if workers != "auto":
        if not workers.isdigit() or int(workers) < 1:
            raise ZooError(f"--workers {workers!r}: pass auto or a number >= 1")
        return int(workers)
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.device_count():
            raise ZooError("--workers auto --device cuda: no GPU visible; use --device cpu")
        return torch.cuda.device_count()
    return os.cpu_count() or 1


def run_workers(run: str | Path, count: int, data: str, skip_bad: bool, device: str,
                wait: float) -> None:
    """Run shards 0..count-1 of an opened run as processes on this machine (GPU k for worker
    k with CUDA); a failed worker is reported by number."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = []
    for k in range(count):
        dev = f"cuda:{k}" if device.startswith("cuda") else device
        procs.append(ctx.Process(target=_worker, args=(str(run), k, count, data, skip_bad, dev,
                                                       wait)))
        procs[-1].start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()
        raise
    failed = [k for k, p in enumerate(procs) if p.exitcode != 0]
    if failed:
        raise ZooError(f"workers {failed} of {count} failed (see their messages above); rerun "
                       "the same command to resume")


def _worker(run: str, k: int, count: int, data: str, skip_bad: bool, device: str,
            wait: float) -> None:
    """One worker process: its shard of the run; an error ends it with one line (exit 2), an
    interrupt with exit 130, never a traceback."""
    try:
        from zoo.comparisons.plan import open_run, run_shard
        from zoo.data.resolve import as_dataset

        if device == "cpu":
            import torch

            torch.set_num_threads(max(1, (os.cpu_count() or 1) // count))
        run_shard(open_run(run), run, k, count, dataset=as_dataset(data, skip_bad=skip_bad),
                  device=device, wait=wait)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except (ZooError, OSError) as exc:
        print(f"zoo: error: worker {k}/{count}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def load_matrix(run: str | Path) -> MatrixResult:
    """Assemble a finished run folder into a `MatrixResult` (what `zoo matrix merge` reads)."""
    from zoo.comparisons.plan import assemble, open_run
    from zoo.io import protect_input
    from zoo.metrics import get

    run = Path(run)
    protect_input(run, "matrix run")
    plan = open_run(run)
    values, reasons, n = assemble(plan, run)
    cfg = plan.config
    labels = [{"model": cfg["models"][i["model"]], "layer": i["name"], "role": i["role"],
               "depth": i["depth"]} for i in plan.layers]
    metric = get(cfg["metric"])
    return MatrixResult(metric, labels, values, reasons, n, cfg["data"]["name"], cfg["reduction"],
                        cfg["random_init"], run, _baseline(plan, run, metric, n),
                        {"weights": cfg.get("weights", {}),
                         "load_options": cfg.get("load_options", {}),
                         "models": _fingerprints(plan, run)})


def _baseline(plan: Plan, run: Path, metric: Any, n: int) -> np.ndarray | None:
    """Expected biased linear CKA for unrelated data, from the stored prepared states."""
    if metric.name != "cka":
        return None
    from zoo.comparisons.plan import load_state

    trace, norm = [], []
    for g in range(len(plan.layers)):
        state, _ = load_state(run / "units" / f"prepare-l{g:05d}")
        trace.append(np.nan if state is None else state.trace)
        norm.append(np.nan if state is None else (n - 1) * np.sqrt(metric.self_hsic(state)))
    trace_a, norm_a = np.array(trace), np.array(norm)
    return np.outer(trace_a, trace_a) / ((n - 1) * np.outer(norm_a, norm_a))


def _fingerprints(plan: Plan, run: Path) -> dict[str, Any]:
    """Each model's weights fingerprint and full provenance, from its extract unit markers."""
    import json

    out = {}
    for unit in plan.units:
        if unit.kind == "extract":
            marker = json.loads((run / "done" / f"{unit.id}.json").read_text())
            out[plan.config["models"][unit.args["model"]]] = marker.get(
                "provenance", {"fingerprint": marker.get("weights", "")})
    return out
