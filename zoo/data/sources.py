"""Image sources: a folder, the ISIC 2018 task-1 layout, the bundled sample photographs, and
deterministic synthetic sets. Each yields images (and masks where it has them) keyed by sample id.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data.dataset import DataChanged, Dataset, digest
from zoo.errors import DataError, ZooError
from zoo.io import protect_input

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".bmp", ".dib", ".tif",
                  ".tiff", ".webp", ".gif", ".pgm", ".ppm", ".pbm", ".pnm", ".tga", ".qoi",
                  ".jp2", ".j2k", ".avif"}

# While set (by `open_dataset(..., skip_bad=True)`), folders that cannot be listed are recorded
# on the dataset instead of stopping the scan.
SKIP_BAD: contextvars.ContextVar[bool] = contextvars.ContextVar("zoo_skip_bad", default=False)


def _open_image(path: Path, expected: str | None = None) -> Callable[[], Any]:
    """A loader of the image at `path`; with `expected` (the content hash the dataset was
    fingerprinted with) the bytes decoded are checked against it, so a file rewritten after the
    scan never yields features under the old content's key."""
    def load() -> Any:
        from PIL import Image

        if expected is None:
            return Image.open(path)
        data = path.read_bytes()
        if _bytes_hash(data) != expected:
            raise DataChanged(f"image {printable(path)} changed since zoo scanned the data "
                              "(it was rewritten during this run); rerun once the files stop "
                              "changing")
        return Image.open(io.BytesIO(data))

    return load


def _file_hash(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _bytes_hash(data: bytes) -> str:
    """`_file_hash` of bytes already read."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _racy(stat: os.stat_result) -> bool:
    """Changed so recently (2 s) that a same-size rewrite could keep size, mtime and ctime."""
    return time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) < 2_000_000_000


def _content_hashes(paths: Sequence[Path], root: Path) -> list[list]:
    """[relative path, size, content hash] per file; hashes are remembered (per folder, in the
    cache root) under the file's size, mtime, ctime and inode, so a rerun reads only what
    changed. Any rewrite of a file changes its ctime, so the memo cannot go stale."""
    from zoo.io import cache_root

    memo_path = cache_root() / "file-hashes" / f"{digest(str(root.resolve()))}.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    out, fresh = [], {}
    for p in paths:
        rel, st = str(p.relative_to(root)), p.stat()
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        known = memo.get(rel)
        content = known[1] if known and known[0] == stamp else _file_hash(p)
        if not _racy(st):
            fresh[rel] = [stamp, content]
        out.append([rel, st.st_size, content])
    if fresh != memo:
        from zoo.io import write_json

        with contextlib.suppress(OSError):  # an unwritable cache only costs re-hashing
            write_json(memo_path, fresh)
    return out


def _list_images(root: Path) -> tuple[list[Path], list[str]]:
    """Every image file under `root` (following links that stay inside it, each real folder
    once) and the folders that could not be listed or that a link leads out of `root` to;
    those stop the scan unless --skip-bad is in effect."""
    unlisted: list[str] = []

    def refuse(where: str, message: str) -> None:
        if not SKIP_BAD.get():
            raise DataError(message)
        unlisted.append(where)

    def failed(exc: OSError) -> None:
        where = exc.filename or str(root)
        refuse(str(where), f"cannot read folder {where}: {exc.strerror or exc}; fix its "
               "permissions, or pass --skip-bad to skip it (it is counted)")

    top = os.path.realpath(root)
    files, seen = [], set()
    for folder, subfolders, names in os.walk(root, onerror=failed, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back into the tree: each real folder once
            subfolders[:] = []
            continue
        if os.path.commonpath([top, real]) != top:  # a link out of --data (its parent, ...)
            subfolders[:] = []
            refuse(folder, f"folder link {folder} leads outside {root} (to {real}); zoo scans "
                   "only inside the folder you name: pass that folder as --data, copy it in, "
                   "or pass --skip-bad to skip the link (it is counted)")
            continue
        seen.add(real)
        subfolders.sort()
        files += [Path(folder) / n for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(p for p in files if p.is_file()), unlisted


def printable(path: str | os.PathLike) -> str:
    """A path as text every writer (JSON, HTML, figures) can show: bytes of a name that are not
    valid UTF-8 (legal on Linux) are written as `\\xff`."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def sample_id(path: Path, root: Path) -> str:
    """A file's sample id: its path relative to `root`, printable."""
    return printable(path.relative_to(root))


def image_folder(path: str | None) -> Dataset:
    """Every image under `path`, recursively, sorted; sample id = path relative to the folder.

    A folder that cannot be read is an error (under --skip-bad it is skipped and counted).
    """
    if not path:
        raise ZooError("dataset 'folder' needs a path: --data folder:PATH (or just --data PATH)")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {path!r} does not exist or is not a folder")
    protect_input(root, "data folder")
    files, unlisted = _list_images(root)
    if not files:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {path}")
    ids = [sample_id(p, root) for p in files]
    if len(set(ids)) != len(ids):
        raise DataError(f"two file names under {path} give the same sample id once written "
                        "as UTF-8; rename one of them")
    hashes = _content_hashes(files, root)
    fp = digest({"folder": hashes, "unlisted": unlisted, "v": 2})
    dataset = Dataset(f"folder:{root}", ids, [_open_image(p, h[2]) for p, h in zip(files, hashes)],
                      fp, origin=[printable(p) for p in files])
    dataset.unlisted = unlisted
    return dataset


ISIC_SPLITS = {
    "train": ("ISIC2018_Task1-2_Training_Input", "ISIC2018_Task1_Training_GroundTruth"),
    "validation": ("ISIC2018_Task1-2_Validation_Input", "ISIC2018_Task1_Validation_GroundTruth"),
    "test": ("ISIC2018_Task1-2_Test_Input", "ISIC2018_Task1_Test_GroundTruth"),
}


def _open_mask(path: Path) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("L")) > 127
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"cannot read mask {path}: {exc}") from None

    return load


def isic_folder(path: str | None) -> Dataset:
    """The ISIC 2018 task-1 layout: `<split>_Input/ISIC_x.jpg` +
    `..._GroundTruth/ISIC_x_segmentation.png`.

    Sample ids are `split/ISIC_x`; every split present is included (see `split_of`).
    """
    if not path:
        raise ZooError("dataset 'isic' needs a path: --data isic:PATH")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"ISIC folder {path!r} does not exist or is not a folder")
    protect_input(root, "data folder")
    ids, masks, origin, files = [], [], [], []
    for split, (inp, gt) in ISIC_SPLITS.items():
        if not (root / inp).is_dir():
            continue
        for img in sorted((root / inp).glob("ISIC_*.jpg")):
            mask = root / gt / f"{img.stem}_segmentation.png"
            if not mask.is_file():
                raise DataError(f"ISIC image {img} has no ground-truth mask {mask}")
            ids.append(f"{split}/{img.stem}")
            masks.append(_open_mask(mask))
            origin.append(str(img))
            files += [img, mask]
    if not ids:
        raise DataError(f"{path} has no ISIC 2018 task-1 images; expected folders "
                        f"{', '.join(v[0] for v in ISIC_SPLITS.values())}")
    hashes = _content_hashes(files, root)
    loaders = [_open_image(img, h[2]) for img, h in zip(files[::2], hashes[::2])]
    fp = digest({"isic": hashes, "v": 2})
    return Dataset(f"isic:{root}", ids, loaders, fp, masks, origin)


def split_of(sample_id: str) -> str:
    """The split prefix of a sample id (`train/ISIC_1` -> `train`), '' when there is none."""
    return sample_id.split("/", 1)[0] if "/" in sample_id else ""


# The photographs that ship inside scikit-image and scikit-learn (no download needed).
SKIMAGE_SAMPLES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
                   "immunohistochemistry", "retina", "colorwheel", "camera", "coins", "moon",
                   "page", "text", "clock")
SKLEARN_SAMPLES = ("china.jpg", "flower.jpg")


def split_indices(ids: Sequence[str], fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                  seed: int = 0) -> dict[str, list[int]]:
    """Train / validation / test indices. Ids with a split prefix (`train/`, `validation/`,
    `test/`, as the ISIC layout gives) keep it; unprefixed ids are split at random (seeded) by
    `fractions`, and a split the data lacks is carved out of the training ids by the same
    fractions. Validation selects the model; test is only ever scored at the end."""
    if abs(sum(fractions) - 1) > 1e-6 or min(fractions) <= 0:
        raise ValueError(f"split fractions {fractions} must be > 0 and sum to 1")
    named: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    for i, sid in enumerate(ids):
        named[split_of(sid) if split_of(sid) in named else "train"].append(i)
    rng = np.random.default_rng(seed)
    pool = rng.permutation(named["train"]).tolist()
    total = len(pool)
    for split, frac in (("test", fractions[2]), ("validation", fractions[1])):
        if not named[split]:
            take = max(1, int(round(frac * total)))
            named[split], pool = pool[:take], pool[take:]
    named["train"] = pool
    return {k: sorted(v) for k, v in named.items()}


def _array_loader(make: Callable[[], np.ndarray]) -> Callable[[], Any]:
    def load() -> Any:
        from PIL import Image

        return Image.fromarray(np.asarray(make()).astype(np.uint8))

    return load


def bundled_samples(arg: str | None = None) -> Dataset:
    """The real photographs bundled with scikit-image and scikit-learn (16 images, offline)."""
    if arg:
        raise ZooError("dataset 'samples' takes no argument")
    import skimage
    import sklearn
    from skimage import data as skdata

    def sklearn_image(name: str) -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)

    ids = [f"skimage/{n}" for n in SKIMAGE_SAMPLES] + [f"sklearn/{n}" for n in SKLEARN_SAMPLES]
    loaders = [_array_loader(getattr(skdata, n)) for n in SKIMAGE_SAMPLES]
    loaders += [_array_loader(lambda n=n: sklearn_image(n)) for n in SKLEARN_SAMPLES]
    fp = digest({"samples": ids, "skimage": skimage.__version__, "sklearn": sklearn.__version__})
    return Dataset("samples", ids, loaders, fp)


def _parse_count(arg: str | None, default: int, name: str) -> int:
    if not arg:
        return default
    try:
        n = int(arg)
    except ValueError:
        hint = f" or a split, {name}:test" if name == "lesions" else ""
        raise ZooError(f"dataset '{name}' takes a sample count, e.g. {name}:{default}{hint}"
                       ) from None
    if n < 1:
        raise ZooError(f"dataset '{name}': sample count must be >= 1")
    return n


def _blob(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, radius: tuple[float, float],
          lobes: int) -> np.ndarray:
    """An irregular blob: an ellipse whose radius wobbles with `lobes` random harmonics."""
    cy, cx = rng.uniform(0.3, 0.7, 2)
    ry, rx = rng.uniform(*radius, 2)
    theta = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(theta) + dy * np.sin(theta)) / rx
    v = (-dx * np.sin(theta) + dy * np.cos(theta)) / ry
    angle = np.arctan2(v, u)
    wobble = 1 + sum(rng.uniform(0, 0.12) * np.sin(k * angle + rng.uniform(0, 2 * np.pi))
                     for k in range(2, 2 + lobes))
    return u**2 + v**2 <= wobble**2


def synthetic_images(n: int, kind: str, size: int = 128, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """`n` deterministic images (n, S, S, 3) uint8 with exact binary masks (n, S, S).

    kind "shapes": 1-3 coloured blobs on smooth striped backgrounds of random colour.
    kind "lesions": one dark, mottled, irregular lesion on textured skin, with hairs crossing it
    (hairs are not part of the mask), as a stand-in for ISIC 2018 task 1.
    """
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng([seed, n, size, kind == "lesions"])
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.zeros((n, size, size), bool)
    for i in range(n):
        if kind == "lesions":
            skin = np.array([0.86, 0.66, 0.55]) * rng.uniform(0.85, 1.1) + rng.normal(0, 0.03, 3)
            texture = gaussian_filter(rng.normal(0, 1, (size, size)), size / 16)
            img = skin + 0.5 * texture[..., None] * np.array([0.04, 0.05, 0.05])
            blob = _blob(rng, yy, xx, (0.12, 0.3), 4)
            mottle = gaussian_filter(rng.normal(0, 1, (size, size)), size / 40)
            lesion = np.array([0.45, 0.28, 0.2]) * rng.uniform(0.6, 1.2)
            img[blob] = lesion + 0.25 * mottle[blob][:, None] * np.array([0.3, 0.2, 0.15])
            for _ in range(rng.integers(0, 4)):  # hairs: thin dark lines across the image
                a, b = rng.uniform(0, 1, 2), rng.uniform(0, 1, 2)
                t = np.linspace(0, 1, 4 * size)[:, None]
                pts = np.clip(((a + (b - a) * t) * size).astype(int), 0, size - 1)
                img[pts[:, 0], pts[:, 1]] = 0.15
            masks[i] = blob
        else:
            base = rng.uniform(0.35, 0.85, 3)
            fx, fy, ph = rng.uniform(2, 9), rng.uniform(2, 9), rng.uniform(0, 6.3)
            img = base + 0.08 * np.sin(2 * np.pi * (fx * xx + fy * yy) + ph)[..., None]
            for _ in range(rng.integers(1, 4)):
                blob = _blob(rng, yy, xx, (0.08, 0.25), 3)
                img[blob] = base * rng.uniform(0.2, 0.6) + rng.uniform(0, 0.2, 3)
                masks[i] |= blob
        img = img + rng.normal(0, 0.02, img.shape)
        images[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return images, masks


def synthetic_dataset(kind: str, n: int, size: int = 128, name: str | None = None) -> Dataset:
    """A generated set as a `Dataset` (arrays made once, on first use), named as the user
    asked for it (`synthetic:32`) or `kind:n`."""
    made: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def arrays() -> tuple[np.ndarray, np.ndarray]:
        if "a" not in made:
            made["a"] = synthetic_images(n, kind, size)
        return made["a"]

    ids = [f"{kind}/{i:05d}" for i in range(n)]
    loaders = [_array_loader(lambda i=i: arrays()[0][i]) for i in range(n)]
    masks = [lambda i=i: arrays()[1][i] for i in range(n)]
    fp = digest({"synthetic": kind, "n": n, "size": size, "v": 1})
    return Dataset(name or f"{kind}:{n}", ids, loaders, fp, masks)


def synthetic(arg: str | None = None) -> Dataset:
    """Coloured blobs on striped backgrounds with exact masks (`synthetic:N`, default 64)."""
    n = _parse_count(arg, 64, "synthetic")
    return synthetic_dataset("shapes", n, name=f"synthetic:{n}")


LESIONS = 240  # images in `lesions`: the set `zoo demo` trains and tests on
SPLITS = ("train", "validation", "test")


def lesions(arg: str | None = None) -> Dataset:
    """Lesion-like blobs on skin-like texture with exact masks: `lesions[:N][:SPLIT]`, N
    images (default 240, the demo's set), or only their train / validation / test split as
    `zoo train` and `zoo demo` cut it (`lesions:test`: the demo's held-out images)."""
    parts = arg.split(":") if arg else []
    split = parts.pop() if parts and parts[-1] in SPLITS else None
    if len(parts) > 1:
        raise ZooError(f"dataset 'lesions:{arg}': write lesions:N, lesions:SPLIT or "
                       f"lesions:N:SPLIT (SPLIT: {', '.join(SPLITS)})")
    n = _parse_count(parts[0] if parts else None, LESIONS, "lesions")
    data = synthetic_dataset("lesions", n)
    if split is None:
        return data
    name = f"lesions:{split}" if n == LESIONS else f"lesions:{n}:{split}"
    return data.subset(split_indices(data.ids)[split], name=name)
