"""The import contract (.importlinter) holds: zoo's layers import downwards only, and no library
module imports the notebook face. Checked on a copy of the tree laid out as the installed package
(align/ -> zoo/align, ...), since the package-dir mapping hides those folders from static tools."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAPPED = ("align", "metrics", "concepts", "cli", "plugins")


def test_the_import_contract_holds(tmp_path):
    shutil.copytree(REPO / "zoo", tmp_path / "zoo", ignore=shutil.ignore_patterns("__pycache__"))
    for folder in MAPPED:
        shutil.copytree(REPO / folder, tmp_path / "zoo" / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
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
