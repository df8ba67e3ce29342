"""Static inspection of pickle streams (never unpickled): which globals a file would import or
call, and whether a non-zip file is a legacy `torch.save` file or a plain `pickle.dump`.

torch lists the globals of zip checkpoints itself; for legacy and plain pickles its refusal names
only the first global it meets (for a plain pickle of tensors that is always
`torch.storage._load_from_bytes`), so zoo lists them all here.
"""

from __future__ import annotations

import os
import pickletools
from pathlib import Path
from typing import BinaryIO

# torch.save's legacy (non-zip) format starts with a pickle of this number
TORCH_MAGIC = 0x1950A86A20F9469CFC6C
MAX_PICKLES = 5  # a legacy torch.save file: magic, protocol, sys_info, object, storage keys
_STRINGS = ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
            "SHORT_BINSTRING")


def pickle_globals(path: str | os.PathLike) -> list[str]:
    """`module.name` of every global the pickles at the start of `path` reference (GLOBAL and
    STACK_GLOBAL opcodes), read statically; a legacy torch.save file's first pickles included."""
    found: set[str] = set()
    with open(path, "rb") as stream:
        for _ in range(MAX_PICKLES):
            try:
                found |= _globals_in_one(stream)
            except Exception:  # noqa: BLE001 - raw storage bytes or the end: no more pickles
                break
    return sorted(found)


def _globals_in_one(stream: BinaryIO) -> set[str]:
    """The globals of the pickle at the stream's position (which ends after its STOP)."""
    found: set[str] = set()
    memo: dict[int, object] = {}
    stack: list[object] = []  # recent pushes: strings as themselves, anything else as None
    for op, arg, _ in pickletools.genops(stream):
        name = op.name
        if name == "GLOBAL":
            module, _, attr = str(arg).partition(" ")
            found.add(f"{module}.{attr}")
        elif name == "STACK_GLOBAL" and len(stack) >= 2:  # names not traced: shown as "?"
            found.add(f"{stack[-2] or '?'}.{stack[-1] or '?'}")
        if name in _STRINGS:
            stack.append(arg)
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1] if stack else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = stack[-1] if stack else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(int(arg)))
        elif name not in ("FRAME", "PROTO", "MARK"):
            stack.append(None)
        del stack[:-4]
        if name == "STOP":
            break
    return found


def is_plain_pickle(path: str | os.PathLike) -> bool:
    """Whether a non-zip `path` is one `pickle.dump` stream rather than a legacy torch.save file
    (whose first pickle is torch's magic number)."""
    with open(Path(path), "rb") as stream:
        try:
            for k, (_, arg, _) in enumerate(pickletools.genops(stream)):
                if arg == TORCH_MAGIC:
                    return False
                if k == 2:  # torch's first pickle is PROTO, the number, STOP
                    return True
        except Exception:  # noqa: BLE001 - not a pickle at all
            return False
    return True
