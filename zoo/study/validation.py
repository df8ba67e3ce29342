"""`zoo validate`: which similarity measure to trust, checked offline on networks zoo trains.

Small CNNs are trained on generated gratings (zoo.study.validation_nets) from several seeds, plus
design groups that change one thing (random labels, a colour-dot shortcut, noise
augmentation). Every registered representation metric (third-party plugins included) is then
scored by
- layer identification (Kornblith et al. 2019, Table 2): for each layer of one seed's network,
  is its best match in another seed's network the layer at the same depth? (all ordered pairs);
- monotonicity (ReSi, Klabunde et al. 2025): within a network, how often a layer is less
  similar to a nearer layer than to a farther one on the same side (violation rate);
- group separation (ReSi's design tests): AUPRC of the last layer's similarity for "same
  design" over the pairs of normal and changed networks, one value per design;
- correlation with output differences (ReSi): Spearman rho between the last layer's
  similarity and output agreement (1 - disagreement) over all pairs of networks.
Distances are negated where "more alike" is needed; asymmetric metrics use the A -> B value
(group separation and output correlation average both directions).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import ZooError
from zoo.study.validation_nets import DESIGNS, NetConfig

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd
    from matplotlib.figure import Figure

    from zoo.progress import Progress

SETTINGS = {"quick": NetConfig(),
            "full": NetConfig(size=32, width=128, depth=10, train=20000, eval=5000, epochs=20,
                              downsample=4, pool=4)}  # 4 x 4 maps: 2048 features a layer
SEEDS = {"quick": 5, "full": 10}
DESIGN_SEEDS = 2
# Kornblith et al. 2019, Table 2 (layer identification, 10 CIFAR-10 CNNs from different seeds)
KORNBLITH_TABLE2 = {"cka": "99.3%", "linreg": "45.4%", "pwcca": "11.1%", "svcca": "9.9-15.1%",
                    "cca": "1.4-10.6%"}


@dataclass
class Network:
    """One trained network's read-out on the held-out images."""

    design: str
    seed: int
    layers: list[np.ndarray] = field(repr=False)
    logits: np.ndarray = field(repr=False)
    accuracy: float


@dataclass
class Validation:
    """Per-metric scores of the validation suite, the networks they come from, the settings."""

    rows: list[dict[str, Any]]
    networks: list[Network]
    settings: dict[str, Any]

    def table(self) -> pd.DataFrame:
        """One row per metric: layer identification, monotonicity, AUPRC per design, rho."""
        import pandas as pd

        return pd.DataFrame(self.rows)

    def figure(self) -> Figure:
        """Bars per metric: layer identification, monotonicity violations, mean AUPRC."""
        from matplotlib.figure import Figure

        names = [r["metric"] for r in self.rows]
        panels = (("layer_identification", "layer identification (higher is better)"),
                  ("monotonicity_violations", "monotonicity violation rate (lower is better)"),
                  ("auprc_mean", "group separation, mean AUPRC (higher is better)"))
        fig = Figure(figsize=(13, 0.32 * len(names) + 1.6))
        for k, (key, title) in enumerate(panels):
            ax = fig.add_subplot(1, 3, k + 1)
            values = [np.nan if r[key] is None else r[key] for r in self.rows]
            ax.barh(range(len(names)), values, color="tab:blue")
            ax.set_yticks(range(len(names)), names if k == 0 else [""] * len(names))
            ax.invert_yaxis()
            ax.set_xlim(0, 1)
            ax.set_title(title, fontsize=9)
        fig.suptitle(f"zoo validate ({self.settings['setting']}): {self.settings['seeds']} seeds, "
                     f"{len(self.networks)} networks, n = {self.settings['eval']} held-out images",
                     fontsize=10)
        fig.tight_layout()
        return fig

    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        """validation.csv, validation.json (settings, networks, rows) and validation.png."""
        from pathlib import Path

        from zoo.io import output_folder, write_csv, write_json
        from zoo.report.figures import save_png

        with output_folder(folder, overwrite=overwrite) as tmp:
            write_csv(tmp / "validation.csv", self.rows)
            write_json(tmp / "validation.json", {
                "settings": self.settings, "kornblith_2019_table2": KORNBLITH_TABLE2,
                "networks": [{"design": n.design, "seed": n.seed, "accuracy": n.accuracy}
                             for n in self.networks], "rows": self.rows})
            save_png(self.figure(), tmp / "validation.png")
        return Path(folder)


@contextlib.contextmanager
def thread_limit(threads: int | None) -> Iterator[None]:
    """Torch and BLAS limited to `threads` inside the block (None: unchanged); the suite's
    matrices are small, and extra threads only contend on a shared machine."""
    if threads is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


def train_networks(cfg: NetConfig, seeds: int, design_seeds: int, device: str = "cpu",
                   progress: Progress | None = None) -> list[Network]:
    """`seeds` normal networks, then `design_seeds` of each changed design, read out."""
    from zoo.study.validation_nets import read_out, train

    plan = [("normal", s) for s in range(seeds)] + [
        (d, 100 + s) for d in DESIGNS[1:] for s in range(design_seeds)]
    out = []
    for k, (design, seed) in enumerate(plan):
        layers, logits, accuracy = read_out(train(cfg, design, seed, device), cfg, device)
        out.append(Network(design, seed, layers, logits, accuracy))
        if progress:
            progress("train", k + 1, len(plan))
    return out


def oriented(values: np.ndarray, kind: str) -> np.ndarray:
    """Larger = more alike: distances negated."""
    return values if kind == "similarity" else -values


def layer_identification(alike: np.ndarray, seeds: int, depth: int) -> float:
    """Fraction of (seed a, seed b != a, layer i) whose best match in b is layer i; `alike`
    is the (seeds x depth)^2 matrix, larger = more alike; an all-undefined row is a miss, and
    NaN when every row is (the metric has no value on these layers)."""
    if not np.isfinite(alike).any():
        return float("nan")
    hits = total = 0
    for a in range(seeds):
        for b in range(seeds):
            if a == b:
                continue
            block = alike[a * depth:(a + 1) * depth, b * depth:(b + 1) * depth]
            for i, row in enumerate(block):
                hits += bool(np.isfinite(row).any() and np.nanargmax(row) == i)
                total += 1
    return hits / total


def monotonicity_violations(alike: np.ndarray, seeds: int, depth: int) -> float:
    """Fraction of (network, anchor i, nearer j, farther k on the same side of i) with layer j
    less alike to i than layer k; undefined triples are left out."""
    violated = total = 0
    for s in range(seeds):
        block = alike[s * depth:(s + 1) * depth, s * depth:(s + 1) * depth]
        for i in range(depth):
            for side in (range(i + 1, depth), range(i - 1, -1, -1)):
                for j, k in combinations(list(side), 2):  # j nearer to i than k
                    if np.isfinite(block[i, j]) and np.isfinite(block[i, k]):
                        violated += bool(block[i, j] < block[i, k])
                        total += 1
    return violated / total if total else float("nan")


def group_separation(alike: np.ndarray, designs: Sequence[str]) -> dict[str, float]:
    """Per changed design: AUPRC of the pair's alikeness for "same design" over the pairs of
    normal and that design's networks (sklearn's average precision)."""
    from sklearn.metrics import average_precision_score

    sym = (alike + alike.T) / 2
    out = {}
    for design in DESIGNS[1:]:
        members = [i for i, d in enumerate(designs) if d in ("normal", design)]
        pairs = list(combinations(members, 2))
        scores = np.array([sym[i, j] for i, j in pairs])
        same = np.array([designs[i] == designs[j] for i, j in pairs])
        keep = np.isfinite(scores)
        out[design] = (float(average_precision_score(same[keep], scores[keep]))
                       if keep.any() and same[keep].any() and not same[keep].all()
                       else float("nan"))
    return out


def output_correlation(alike: np.ndarray, disagreement: np.ndarray) -> float:
    """Spearman rho between the pair's alikeness and its output agreement (1 - disagreement)."""
    from scipy.stats import spearmanr

    sym = (alike + alike.T) / 2
    pairs = list(combinations(range(len(alike)), 2))
    x = np.array([sym[i, j] for i, j in pairs])
    y = np.array([1.0 - disagreement[i, j] for i, j in pairs])
    keep = np.isfinite(x)
    if keep.sum() < 3 or np.ptp(x[keep]) == 0:
        return float("nan")
    return float(spearmanr(x[keep], y[keep]).statistic)


def score_metric(metric: Any, networks: Sequence[Network], seeds: int, depth: int,
                 disagreement: np.ndarray) -> dict[str, Any]:
    """The four checks for one metric."""
    from zoo.engine.allpairs import all_pairs

    normal = [layer for n in networks[:seeds] for layer in n.layers]
    values, reasons = all_pairs(metric, normal)
    alike = oriented(values, metric.kind)
    last, _ = all_pairs(metric, [n.layers[-1] for n in networks])
    separation = group_separation(oriented(last, metric.kind), [n.design for n in networks])
    undefined = sorted({str(r) for r in reasons[np.isnan(values)]})
    return {"metric": metric.name, "kind": metric.kind,
            "layer_identification": _cell(layer_identification(alike, seeds, depth)),
            "monotonicity_violations": _cell(monotonicity_violations(alike, seeds, depth)),
            **{f"auprc_{d}": _cell(v) for d, v in separation.items()},
            "auprc_mean": _cell(float(np.nanmean(list(separation.values())))
                                if np.isfinite(list(separation.values())).any() else np.nan),
            "rho_output": _cell(output_correlation(oriented(last, metric.kind), disagreement)),
            "undefined": "; ".join(undefined),
            "kornblith_2019": KORNBLITH_TABLE2.get(metric.name, "")}


def _cell(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def representation_metrics(metrics: str | Sequence[str] | None) -> list[Any]:
    """The metric objects to validate: the named ones, or every registered metric that compares
    representations (output-level measures, which need class scores, are the yardstick)."""
    from zoo.comparisons.comparison import resolve_metrics
    from zoo.registry.host import get_registry

    if metrics is None:
        return [m for m in get_registry().metrics.values()
                if not getattr(m, "same_width", False)]
    return resolve_metrics(metrics)


def validate(metrics: str | Sequence[str] | None = None, *, setting: str = "quick",
             seeds: int | None = None, design_seeds: int = DESIGN_SEEDS, device: str = "cpu",
             threads: int | None = 1, config: NetConfig | None = None,
             progress: Progress | None = None) -> Validation:
    """Train the suite (`setting` quick: CPU minutes; full: Kornblith-sized, for a GPU; `config`
    overrides its sizes) and score every metric (default: all registered representation
    metrics)."""
    from zoo.metrics import compute
    from zoo.progress import tagged

    if setting not in SETTINGS:
        raise ZooError(f"unknown validation setting {setting!r}; use one of {', '.join(SETTINGS)}")
    seeds = SEEDS[setting] if seeds is None else seeds
    if seeds < 2 or design_seeds < 2:
        raise ZooError(f"need at least 2 seeds and 2 design seeds (layer identification and "
                       f"group separation compare networks), got {seeds} and {design_seeds}")
    cfg = config or SETTINGS[setting]
    chosen = representation_metrics(metrics)
    with thread_limit(threads):
        networks = train_networks(cfg, seeds, design_seeds, device, progress)
        m = len(networks)
        disagreement = np.zeros((m, m))
        for i, j in combinations(range(m), 2):
            disagreement[i, j] = disagreement[j, i] = compute(
                "disagreement", networks[i].logits, networks[j].logits)
        rows = []
        for k, metric in enumerate(chosen):
            rows.append(score_metric(metric, networks, seeds, cfg.depth, disagreement))
            if progress:
                tagged(progress, metric.name)("score", k + 1, len(chosen))
    settings = {"setting": setting, "seeds": seeds, "design_seeds": design_seeds,
                **asdict(cfg), "layers": cfg.layer_names(),
                "reduction": {0: "flatten", 1: "gap"}.get(cfg.pool, f"grid:{cfg.pool}"),
                "chance_layer_identification": 1 / cfg.depth,
                "chance_auprc": _chance_auprc(seeds, design_seeds)}
    return Validation(rows, networks, settings)


def _chance_auprc(seeds: int, design_seeds: int) -> float:
    """The AUPRC of a random score: the fraction of same-design pairs."""
    n = seeds + design_seeds
    same = seeds * (seeds - 1) / 2 + design_seeds * (design_seeds - 1) / 2
    return same / (n * (n - 1) / 2)
