"""The protocol every result object shares (FeatureSet, Comparison, MatrixResult, CutRun,
AlignRun, DissectRun, LCEResult): `table()` a DataFrame, `to_dict()` the JSON summary,
`save(folder, overwrite=False)` the output folder, a short `repr` and an HTML view for
notebooks; `zoo.open(folder)` reads a saved folder back (each class's `load`)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

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
        """The result saved in `folder`; types that cannot be read back yet say so."""
        from zoo.errors import ZooError

        raise ZooError(f"reading a saved {cls.__name__} back is not supported yet; its tables "
                       f"are the CSV/JSON files in {folder}")

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


def _short(value: Any, limit: int = 70) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
