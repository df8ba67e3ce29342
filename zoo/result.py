"""The protocol every result object shares (FeatureSet, Comparison, MatrixResult, CutRun,
AlignRun, DissectRun, LCEResult): `table()` a DataFrame, `to_dict()` the JSON summary,
`save(folder, overwrite=False)` the output folder, a short `repr` and an HTML view for
notebooks; `zoo.open(folder)` reads a saved folder back (each class's `load`), with
`NotSaved` standing in for the parts a folder does not hold."""

from __future__ import annotations

import html
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

if TYPE_CHECKING:
    import pandas as pd

REPR_LINES = 12  # summary fields shown by repr (a repr stays under 20 lines)


class Result:
    """Mixin: subclasses implement `table`, `to_dict`, `save` and `headline`; `marker` names the
    file whose presence identifies their saved folder."""

    marker: ClassVar[str]

    def table(self) -> pd.DataFrame:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        raise NotImplementedError

    def headline(self) -> str:
        """One line saying what this result is (model(s), data, size)."""
        raise NotImplementedError

    @classmethod
    def load(cls, folder: str | Path) -> Result:
        """The result that `save` wrote in `folder` (`zoo.open` finds it by `marker`)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = [f"  {k}: {_short(v)}" for k, v in self.to_dict().items()
                  if isinstance(v, (str, int, float, bool)) or v is None]
        shown = fields[:REPR_LINES] + (["  ..."] if len(fields) > REPR_LINES else [])
        return "\n".join([f"<{type(self).__name__} {self.headline()}>", *shown,
                          f"  table(): {len(self.table())} rows"])

    def _repr_html_(self) -> str:
        table = self.table()
        more = f"<p>{len(table) - 20} more rows in .table()</p>" if len(table) > 20 else ""
        return (f"<p><b>{html.escape(type(self).__name__)}</b> "
                f"{html.escape(self.headline())}</p>" + table.head(20).to_html() + more)


class NotSaved(Mapping):
    """Stands in for a part that a result read back from disk does not hold (its features, its
    images): calling, indexing, iterating or sizing it raises a ZooError with `message`."""

    def __init__(self, message: str) -> None:
        self.message = message

    def _fail(self, *args: Any, **kwargs: Any) -> NoReturn:
        from zoo.errors import ZooError

        raise ZooError(self.message)

    __call__ = __getitem__ = __iter__ = __len__ = _fail

    def __repr__(self) -> str:
        return f"<not saved: {self.message}>"


@contextmanager
def reading(folder: str | Path, rerun: str) -> Iterator[None]:
    """Inside, a missing or malformed file of the saved result in `folder` becomes one DataError
    naming the folder and `rerun`, the call that writes it again."""
    from zoo.errors import DataError

    try:
        yield
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise DataError(f"cannot read the result saved in {folder} ({type(exc).__name__}: "
                        f"{exc}): it is incomplete, damaged or written by an older zoo; "
                        f"rerun {rerun}") from None


def number(value: Any) -> Any:
    """A JSON null read back as the NaN it was written for (`zoo.io.to_jsonable`)."""
    return float("nan") if value is None else value


def numbers(record: dict[str, Any]) -> dict[str, Any]:
    """Every top-level null of a JSON record back to NaN."""
    return {k: number(v) for k, v in record.items()}


def _short(value: Any, limit: int = 70) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
