"""Reading transformers `save_pretrained` folders the way zoo reads every other file.

transformers unpickles a folder's `.bin` weights itself (weights-only, ignoring a request for
full unpickling, with PyTorch's multi-paragraph refusal); zoo reads them with its own reader
instead (`zoo.model.weights.read_state_dict`: the same allowlist, refusal and --trust-weights
as every other file) and hands the state dict to `from_pretrained`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from zoo.errors import WeightsError

T = TypeVar("T")


def load_pretrained(load: Callable[..., T], folder: str | Path | None, *, trust: bool = False,
                    what: str = "", **kwargs: Any) -> T:
    """`load(folder, local_files_only=True, **kwargs)` (a from_pretrained; `folder` None with a
    `state_dict` in kwargs), quietly; a folder's pickled weights are read by zoo (`trust`: full
    unpickling) and passed as `state_dict` with the folder's config (transformers takes a
    state dict only without a folder). Any failure is one WeightsError line naming `what`
    (default: the folder)."""
    from zoo.model.weights import brief, read_state_dict

    folder = None if folder is None else Path(folder)
    what = what or f"transformers folder {folder}"
    pickled = pickled_weights(folder) if folder is not None else []
    if pickled:
        state: dict[str, Any] = {}
        for file in pickled:
            part = read_state_dict(file, trust=trust)
            if not isinstance(part, dict):
                raise WeightsError(f"{file} holds a {type(part).__name__}, not a state dict")
            state.update(part)
    try:
        with quiet_transformers():
            if not pickled:
                return load(folder, local_files_only=True, **kwargs)
            from transformers import AutoConfig

            config, kwargs = AutoConfig.from_pretrained(folder, local_files_only=True,
                                                        return_unused_kwargs=True, **kwargs)
            auto = getattr(getattr(load, "__self__", None), "_model_mapping", None)
            if auto is not None:  # an Auto class needs a folder: the config's own class
                load = auto[type(config)].from_pretrained
            return load(None, config=config, state_dict=state, local_files_only=True, **kwargs)
    except Exception as exc:  # noqa: BLE001 - unreadable, partial or foreign folder
        raise WeightsError(f"cannot load {what}: {brief(exc)}") from None


def pickled_weights(folder: Path) -> list[Path]:
    """The torch.save weight files transformers would read from `folder` (none when it holds
    safetensors, which transformers prefers): `pytorch_model.bin` or the shards its index lists."""
    import json

    if any(folder.glob("*.safetensors")):
        return []
    index = folder / "pytorch_model.bin.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError):
            raise WeightsError(f"{index}: not a readable shard index (weight_map)") from None
        return [folder / s for s in shards]
    single = folder / "pytorch_model.bin"
    return [single] if single.is_file() else []


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and load reports while reading a checkpoint (library
    code prints nothing)."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
