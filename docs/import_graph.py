"""Draw zoo's import graph by sub-package (docs/images/import-graph.png, via Graphviz `dot`).

    python docs/import_graph.py            # writes docs/images/import-graph.dot and .png

The tree is copied into a temporary folder laid out as the installed package (align/ ->
zoo/align, ...) by tests/test_architecture.py's `package_copy` and read with grimp
(import-linter's graph); imports under TYPE_CHECKING are left out. Dashed edges are lazy imports
inside save() and load().
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.test_architecture import LAZY_SAVE, package_copy  # noqa: E402 - after the path


def group(module: str) -> str:
    """The node a module is drawn in: its sub-package (zoo.features), or the module itself."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def edges() -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(imports, lazy save imports) between sub-packages."""
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, str(package_copy(Path(tmp))))
        import grimp

        graph = grimp.build_graph("zoo", exclude_type_checking_imports=True)
    plain, lazy = set(), set()
    for m in graph.modules:
        for n in graph.find_modules_directly_imported_by(m):
            a, b = group(m), group(n)
            if a != b:
                (lazy if (m, n) in LAZY_SAVE else plain).add((a, b))
    return plain, lazy - plain


def main() -> None:
    plain, lazy = edges()
    lines = ["digraph zoo {", "  rankdir=TB; node [shape=box, fontname=Helvetica];"]
    lines += [f'  "{a}" -> "{b}";' for a, b in sorted(plain)]
    lines += [f'  "{a}" -> "{b}" [style=dashed];' for a, b in sorted(lazy)]
    lines.append("}")
    out = REPO / "docs" / "images" / "import-graph"
    out.with_suffix(".dot").write_text("\n".join(lines) + "\n")
    subprocess.run(["dot", "-Tpng", "-Gdpi=80", str(out.with_suffix(".dot")), "-o",
                    str(out.with_suffix(".png"))], check=True)
    print(f"{len(plain)} imports between sub-packages; written {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
