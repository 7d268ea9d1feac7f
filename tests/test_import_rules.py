"""Who may import whom (the README's layout table), checked on the source: every `import x` and
`from x import y` in every .py file of each package, at any depth (inside functions too), relative imports
resolved, plus `importlib.import_module("...")` / `__import__("...")` with a literal name.

Also: the data contract (`shards`) and the model side (`model`, `train`) never import OpenCV, ONNX Runtime or
vLLM, checked on the source and by importing every module in a fresh interpreter. (`droplet --help` loading
no torch/Ray/OpenCV is checked in `test_cli_config.py`.)
"""

from __future__ import annotations

import ast
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from conftest import PYTHON, REPO

ALL = frozenset({"curation", "captioning", "shards", "model", "train", "droplet", "runtime"})
RULES: dict[str, frozenset[str]] = {
    "curation": frozenset({"shards", "runtime"}),
    "captioning": frozenset({"shards", "runtime"}),
    "shards": frozenset(),
    "model": frozenset(),
    "train": frozenset({"model", "shards", "runtime"}),
    "droplet": ALL,
    "runtime": frozenset(),
}
"""package -> the other packages of ours it may import (itself always)."""
OURS = ALL | {"tests", "bench"}  # tests/ and bench/ may import everything; no package may import them
HEAVY = frozenset({"cv2", "onnxruntime", "rapidocr_onnxruntime", "vllm"})
NO_HEAVY = ("model", "train", "shards")
"""Packages that must import (and run) without OpenCV, ONNX Runtime or vLLM."""
DYNAMIC = {"import_module", "__import__"}


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    package: str
    imported: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.package} imports {self.imported} ({self.why})"


def _module_name(root: Path, path: Path) -> list[str]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _resolve(root: Path, path: Path, node: ast.ImportFrom) -> str | None:
    """The absolute module a `from ... import` names; None when a relative one climbs above the top level."""
    if node.level == 0:
        return node.module or ""
    package = _module_name(root, path)
    if path.name != "__init__.py":
        package = package[:-1]
    if node.level - 1 >= len(package):
        return None
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(root: Path, path: Path) -> list[tuple[int, str | None]]:
    """(line, absolute module name) of every import in the file; None for a relative import above the top."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, _resolve(root, path, node)))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in DYNAMIC and isinstance(node.args[0].value, str) and not node.args[0].value.startswith("."):
                found.append((node.lineno, node.args[0].value))
    return found


def check_tree(root: Path, rules: dict[str, frozenset[str]] = RULES) -> list[Violation]:
    """Every import in the packages under `root` that breaks `rules` (or the no-heavy-imports rule)."""
    violations: list[Violation] = []
    for package in sorted(rules):
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            for line, module in imported_modules(root, path):
                if module is None:
                    violations.append(Violation(rel, line, package, "(relative)", "climbs above the top level"))
                    continue
                top = module.split(".")[0]
                if top in OURS and top != package and top not in rules[package]:
                    allowed = ", ".join(sorted(rules[package])) or "nothing of ours"
                    violations.append(Violation(rel, line, package, module, f"{package}/ may import {allowed}"))
                if package in NO_HEAVY and top in HEAVY:
                    violations.append(Violation(rel, line, package, module, "no OpenCV/ONNX/vLLM here"))
    return violations


def undeclared_packages(root: Path, rules: dict[str, frozenset[str]] = RULES) -> list[str]:
    """Top-level Python packages (folders with `__init__.py`) that the rules do not name."""
    return sorted(p.parent.name for p in root.glob("*/__init__.py") if p.parent.name not in rules)


# --------------------------------------------------------------------------------------------- the real tree
def test_the_packages_follow_the_import_rules() -> None:
    violations = check_tree(REPO)
    assert not violations, "import rules broken:\n" + "\n".join(map(str, violations))


def test_every_package_has_rules() -> None:
    assert undeclared_packages(REPO) == [], "add the new package to RULES here and to the README's layout table"
    for package in RULES:
        assert (REPO / package / "__init__.py").exists(), f"{package}/ is in RULES but is no package"


def test_the_readme_layout_table_states_these_rules() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    rows = readme[readme.index("\n## Layout\n"):].split("\n\n")[1].splitlines()[2:]
    stated = {}
    for row in rows:
        folder, _, may = (cell.strip() for cell in row.strip().strip("|").rsplit("|", 2))
        package = folder.strip("`/")
        if package in RULES:
            named = ALL if may == "all" else frozenset() if may == "nothing of ours" else frozenset(
                re.findall(r"`(\w+)`", may))
            stated[package] = named
    assert stated == RULES


def test_the_checker_sees_the_real_cross_imports() -> None:
    """The scan finds what it should: train imports model, droplet imports lazily (inside functions)."""
    seen = {(p.relative_to(REPO).parts[0], (m or "").split(".")[0])
            for p in (REPO / "train").rglob("*.py") for _, m in imported_modules(REPO, p)}
    assert ("train", "model") in seen and ("train", "shards") in seen
    cli = {(m or "").split(".")[0] for _, m in imported_modules(REPO, REPO / "droplet" / "cli.py")}
    assert {"curation", "captioning", "train"} <= cli


def test_model_train_and_shards_import_without_opencv_onnx_or_vllm() -> None:
    """Every module of model/, train/ and shards/ imported in one fresh interpreter: none of OpenCV, ONNX
    Runtime, vLLM or the curation/captioning packages gets loaded on the way."""
    modules = sorted(".".join(_module_name(REPO, p)) for package in NO_HEAVY for p in (REPO / package).rglob("*.py"))
    code = (f"import importlib, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
            f"print(sorted(m for m in {sorted(HEAVY | {'curation', 'captioning'})!r} if m in sys.modules))")
    result = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


# ------------------------------------------------------------------------------- the checker catches breaks
def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_the_checker_reports_each_kind_of_violation(tmp_path: Path) -> None:
    for package in RULES:
        _write(tmp_path, f"{package}/__init__.py", "")
    _write(tmp_path, "shards/x.py", "import curation\n")  # module level
    _write(tmp_path, "shards/sub/__init__.py", "")
    _write(tmp_path, "shards/sub/y.py", "def f():\n    from captioning.qa import check_caption\n")  # in a function
    _write(tmp_path, "model/z.py", "from ..train import trainer\n")  # relative, above the top level
    _write(tmp_path, "runtime/w.py", "import importlib\nimportlib.import_module('droplet.cli')\n")  # dynamic
    _write(tmp_path, "train/v.py", "from .. import curation\n")
    _write(tmp_path, "curation/u.py", "class A:\n    def f(self):\n        import model.pipeline as p\n")
    _write(tmp_path, "captioning/t.py", "import tests.conftest\n")
    _write(tmp_path, "model/heavy.py", "def f():\n    import cv2\n")  # heavy, lazily: still refused
    _write(tmp_path, "train/heavy.py", "from vllm import LLM\n")
    # allowed: these must not be reported
    _write(tmp_path, "train/ok.py", "import model.pipeline\nfrom shards import sampling\nfrom . import ok2\n")
    _write(tmp_path, "curation/ok.py", "import cv2\nfrom runtime.atomic import read_json\nfrom .ok2 import x\n")
    _write(tmp_path, "droplet/ok.py", "def f():\n    import curation, captioning, train, model\n")
    _write(tmp_path, "shards/sub/ok.py", "from . import y\nfrom ..x import z\nimport pyarrow\n")

    found = {(v.path, v.imported) for v in check_tree(tmp_path)}
    assert found == {
        ("shards/x.py", "curation"),
        ("shards/sub/y.py", "captioning.qa"),
        ("model/z.py", "(relative)"),
        ("runtime/w.py", "droplet.cli"),
        ("train/v.py", "(relative)"),
        ("curation/u.py", "model.pipeline"),
        ("captioning/t.py", "tests.conftest"),
        ("model/heavy.py", "cv2"),
        ("train/heavy.py", "vllm"),
    }, found
    message = str(next(v for v in check_tree(tmp_path) if v.path == "shards/x.py"))
    assert message == "shards/x.py:1: shards imports curation (shards/ may import nothing of ours)"


def test_a_new_top_level_package_must_be_declared(tmp_path: Path) -> None:
    for package in (*RULES, "quality"):
        _write(tmp_path, f"{package}/__init__.py", "")
    assert undeclared_packages(tmp_path) == ["quality"]
