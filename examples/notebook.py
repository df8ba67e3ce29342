"""A notebook session with zoo, as a script (the test suite runs it, so it never rots).

Two random-init models, their features over the bundled photographs, a comparison with a tidy
table and a heatmap, your own nn.Module without a plugin, and a small AlignedCut.
Run it: `python examples/notebook.py OUTPUT_FOLDER`.
"""

import sys

import torch

import zoo

out = sys.argv[1] if len(sys.argv) > 1 else "runs/notebook"

# 1. What is there, and two models (random weights: nothing to download)
print([spec.id for spec in zoo.list_models("toy*")])
cnn = zoo.load("toy/cnn", random_init=True)
vit = zoo.load("toy/vit", random_init=True)

# 2. Features over a dataset: labelled by sample id, one (samples, dims) matrix per layer
data = zoo.dataset("samples")
a = zoo.extract(cnn, data, layers="stage*", reduction="gap")
b = zoo.extract(vit, data, reduction="gap")
print(a.table())  # layer, role, depth, layout, shape

# 3. Compare: every metric on every layer pair, rows paired by sample id
result = zoo.compare(a, b, metrics="cka,cka-debiased,svcca", permutations=20)
table = result.table()  # tidy DataFrame: model, layer, role, depth, metric, value, p, reason
print(table[["layer_a", "layer_b", "metric", "value", "p_adjusted"]].head())
print(result.best_matches("cka-debiased"))
figure = result.heatmap("cka")  # a matplotlib Figure: shown inline in a notebook
result.save(f"{out}/compare", overwrite=True)  # exactly what `zoo compare` writes
print(zoo.open(f"{out}/compare"))  # read back: the same tables, a short summary

# 4. Your own network, no plugin: name the modules to hook
net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                          torch.nn.Conv2d(8, 16, 3, stride=2, padding=1))
mine = zoo.wrap(net, {"conv1": "0", "conv2": "2"}, name="mine/tiny")
print(zoo.compare(zoo.extract(mine, data), a, metrics="cka").values("cka"))

# 5. A small AlignedCut across both models' spatial layers
cut = zoo.align.cut([cnn, vit], data, layers="stage*,block*", n_eig=8, landmarks=256)
print(cut.table()[["model", "layer", "grid", "position_r2"]])
cut.save(f"{out}/cut", overwrite=True)
