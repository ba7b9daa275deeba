"""The import layering, checked by walking every module's syntax tree (no module is imported).

A table of rules, each applied to whichever of our packages exist: a package may import neither the
packages nor the third-party libraries its rule forbids, anywhere in the file (top level, inside
functions, under `if TYPE_CHECKING`); `analysis` may moreover import only the standard library and
numpy, pandas, scipy, matplotlib. `scaling/` (the CLI) may import anything, lazily.
"""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("lm", "experiments", "sweeps", "analysis", "scaling", "atomicio")

# package -> names it must never import (ours or third-party)
FORBIDDEN = {
    "atomicio": {"lm", "experiments", "sweeps", "analysis", "scaling", "torch", "ray"},  # the shared primitive
    "lm": {"experiments", "sweeps", "analysis", "scaling"},
    "experiments": {"sweeps", "analysis", "scaling"},
    "sweeps": {"analysis", "scaling"},
    "analysis": {"torch", "ray", "lm", "experiments", "sweeps", "scaling"},
}
# package -> the only names it may import (besides the standard library)
ONLY = {
    "analysis": {"analysis", "atomicio", "numpy", "pandas", "scipy", "matplotlib"},
}


def imported_roots(path: Path) -> set[str]:
    """Top-level names of every absolute import in a file (relative imports stay inside the package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            roots.add(str(node.args[0].value).split(".")[0])
    return roots


def _cases():
    for package, forbidden in FORBIDDEN.items():
        folder = ROOT / package
        if folder.is_dir():
            for path in sorted(folder.rglob("*.py")):
                yield pytest.param(path, forbidden, id=str(path.relative_to(ROOT)))


@pytest.mark.parametrize("path, forbidden", list(_cases()))
def test_module_respects_the_layering(path, forbidden):
    roots = imported_roots(path)
    bad = roots & forbidden
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}, which its layer forbids"
    package = path.relative_to(ROOT).parts[0]
    if package in ONLY:
        outside = roots - ONLY[package] - set(sys.stdlib_module_names) - {"__future__"}
        assert not outside, f"{path.relative_to(ROOT)} imports {sorted(outside)}; {package} may import only {sorted(ONLY[package])}"


def test_the_checker_sees_every_kind_of_import(tmp_path):
    """The walk catches plain, from-, nested, TYPE_CHECKING and importlib imports, and skips relative ones."""
    source = tmp_path / "m.py"
    source.write_text(
        "import numpy as np\nfrom torch.nn import Linear\nfrom . import sibling\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import ray\n"
        "def f():\n    import lm.model\n    importlib.import_module('sweeps.x')\n"
    )
    assert imported_roots(source) == {"numpy", "torch", "typing", "ray", "lm", "sweeps"}


def test_the_rules_cover_our_packages_and_analysis_exists():
    assert set(FORBIDDEN) <= set(OURS) and set(ONLY) <= set(FORBIDDEN)
    assert (ROOT / "analysis").is_dir() and any((ROOT / "analysis").glob("*.py"))
