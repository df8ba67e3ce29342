"""The import contract (.importlinter) holds: zoo's layers import downwards only, and no library
module imports the notebook face. Checked on a copy of the tree laid out as the installed package
(align/ -> zoo/align, ...), since the package-dir mapping hides those folders from static tools."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAPPED = ("align", "metrics", "concepts", "cli", "plugins")


# Lazy imports inside save() and load() (a result writing or reading its own folder) are the
# only cycles allowed.
LAZY_SAVE = {("zoo.align.pipeline", "zoo.align.report"),
             ("zoo.align.pipeline", "zoo.align.saved"),
             ("zoo.concepts.embedding", "zoo.concepts.report"),
             ("zoo.concepts.embedding", "zoo.concepts.plot"),
             ("zoo.concepts.embedding", "zoo.concepts.saved"),
             ("zoo.concepts.pipeline", "zoo.concepts.saved")}


def package_copy(root: Path) -> Path:
    """The tree laid out as the installed package under `root`."""
    shutil.copytree(REPO / "zoo", root / "zoo", ignore=shutil.ignore_patterns("__pycache__"))
    for folder in MAPPED:
        shutil.copytree(REPO / folder, root / "zoo" / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_the_import_contract_holds(tmp_path):
    package_copy(tmp_path)
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), str(REPO / ".importlinter")], cwd=tmp_path,
                            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def test_no_library_module_imports_the_notebook_face():
    faces = {REPO / "zoo" / "api.py", REPO / "zoo" / "__init__.py"}
    library = [p for top in ("zoo", *MAPPED) if top != "cli"
               for p in (REPO / top).rglob("*.py") if p not in faces]
    offenders = [str(p.relative_to(REPO)) for p in library
                 if "zoo.api" in p.read_text() or "from zoo import api" in p.read_text()]
    assert not offenders


def test_no_import_cycle_but_the_declared_lazy_saves(tmp_path):
    package_copy(tmp_path)
    code = f"""
import grimp
graph = grimp.build_graph("zoo", exclude_type_checking_imports=True)
for importer, imported in {sorted(LAZY_SAVE)!r}:
    assert graph.direct_import_exists(importer=importer, imported=imported), (importer, imported)
    graph.remove_import(importer=importer, imported=imported)
seen, done = set(), set()
def visit(m, path):
    if m in done:
        return
    assert m not in seen, " -> ".join(path + [m])
    seen.add(m)
    for n in sorted(graph.find_modules_directly_imported_by(m)):
        visit(n, path + [m])
    done.add(m)
for m in sorted(graph.modules):
    seen.clear()
    visit(m, [])
print("acyclic", len(graph.modules))
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("acyclic")


def test_every_zoo_import_names_something_that_exists():
    """Lazy imports inside functions too: a moved name fails here, not in a user's run."""
    import ast
    import importlib.util

    missing = []
    for path in sorted(p for top in ("zoo", *MAPPED, "tests", "benchmarks", "docs")
                       for p in (REPO / top).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                    and node.module.split(".")[0] == "zoo"):
                continue
            module = importlib.import_module(node.module)
            missing += [f"{path.relative_to(REPO)}:{node.lineno}: {node.module}.{a.name}"
                        for a in node.names if not hasattr(module, a.name)
                        and importlib.util.find_spec(f"{node.module}.{a.name}") is None]
    assert not missing, missing
