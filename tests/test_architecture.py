"""The design card's shape, checked: stage folders at the root, one-way imports, one home
for each fact.

Both checks read the source with ``ast`` (nothing is imported), so a lazy import inside a
function counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STAGES = ("data", "features", "models", "decisions", "training", "serving")
ALLOWED: dict[str, set[str]] = {
    "data": set(),
    "features": {"data"},
    "models": {"data", "features"},
    "decisions": {"data", "features", "models"},
    "training": {"data", "features", "models", "decisions"},
    "serving": {"data", "features", "models", "decisions"},
}
"""What each stage may import besides itself and the package root (settings)."""


def _modules(folder: str) -> Iterator[Path]:
    """The folder's source files; generated trees (a benchmark's results, an MLflow store's
    copies of the code) are not source."""
    for path in sorted((REPO / folder).rglob("*.py")):
        if "results" not in path.relative_to(REPO).parts:
            yield path


def _imported_stages(tree: ast.AST) -> Iterator[tuple[int, str]]:
    seen = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            stage = parts[1] if parts[0] == "shiprisk" and len(parts) > 1 else None
            if stage in STAGES and (node.lineno, stage) not in seen:
                seen.add((node.lineno, stage))
                yield node.lineno, stage


def import_violations(stage: str, source: str, where: str) -> list[str]:
    allowed = ALLOWED[stage] | {stage}
    return [
        f"{where}:{line} imports shiprisk.{other}"
        for line, other in _imported_stages(ast.parse(source))
        if other not in allowed
    ]


def test_the_root_shows_the_design_card() -> None:
    for folder in (*STAGES, "tests"):
        assert (REPO / folder / "__init__.py").is_file() or folder == "tests", folder
        assert any((REPO / folder).glob("*.py")), f"{folder}/ holds no code"
    for file in ("pyproject.toml", "README.md"):
        assert (REPO / file).is_file()
    package = {p.name for p in (REPO / "shiprisk").iterdir() if p.suffix == ".py"}
    assert package <= {"__init__.py", "settings.py", "cli.py"}, package
    assert not [p for p in (REPO / "shiprisk").iterdir() if p.is_dir() and p.name in STAGES]


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_imports_only_lower_layers(stage: str) -> None:
    found = []
    for path in _modules(stage):
        found += import_violations(stage, path.read_text(), str(path.relative_to(REPO)))
    assert not found, "\n".join(found)


MODEL_FREE = (
    "decisions/costs.py",
    "decisions/candidates.py",
    "decisions/policy.py",
    "decisions/actions.py",
)


def test_the_decision_policy_needs_no_model() -> None:
    """Only the scoring path (decisions/scoring.py) joins the model and the policy."""
    for rel in MODEL_FREE:
        found = [s for _, s in _imported_stages(ast.parse((REPO / rel).read_text()))]
        assert set(found) <= {"data", "decisions"}, (rel, found)


def test_the_import_check_catches_a_serving_import_in_training() -> None:
    bad = "def f():\n    from shiprisk.serving.batch import score_open\n"
    assert import_violations("training", bad, "x.py") == ["x.py:2 imports shiprisk.serving"]
    assert import_violations("data", "import shiprisk.models.registry\n", "y.py")
    assert not import_violations("serving", "from shiprisk.decisions import policy\n", "z.py")


# -- one home per fact -------------------------------------------------------------------

FACTS: dict[str, tuple[frozenset[str], str]] = {
    "tracking levels": (frozenset({"none", "partial", "full"}), "data/catalogs.py"),
    "outcome labels": (frozenset({"lost", "rejected"}), "data/outcomes.py"),
    "outcome keys": (frozenset({"loss", "reject"}), "data/outcomes.py"),
    "truth columns": (frozenset({"true_p_loss", "true_p_reject"}), "data/outcomes.py"),
    "valuable goods": (frozenset({"electronics", "jewelry"}), "data/contract.py"),
    "soft packaging": (frozenset({"envelope", "poly_mailer"}), "data/contract.py"),
}
"""A literal collection of exactly a fact's members (or a string-to-string table keyed or
valued by them) outside the fact's home is a copy of it."""
CALLS: dict[str, tuple[str, ...]] = {
    "os.replace": ("data/atomic.py",),
    "download_risk_model": ("models/registry.py",),
    "log_loss": (),
}
"""Calls (by final name) that only the fact's home may make: atomic renames, champion
downloads, and scikit-learn's log loss (training/evaluate.py has the one log loss)."""
CODE = ("shiprisk", *STAGES, "benchmarks")


def _string_sets(tree: ast.AST) -> Iterator[tuple[int, frozenset[str]]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            groups = [node.elts]
        elif isinstance(node, ast.Dict):  # a renaming table: string keys to string values
            groups = [[k for k in node.keys if k is not None], node.values]
        else:
            continue
        strings = [[e.value for e in g if isinstance(e, ast.Constant)] for g in groups]
        if all(
            len(s) == len(g) and s and all(isinstance(v, str) for v in s)
            for s, g in zip(strings, groups, strict=True)
        ):
            for s in strings:
                yield node.lineno, frozenset(s)


def _calls(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                yield node.lineno, f"{f.value.id}.{f.attr}"
            yield node.lineno, name


def fact_violations(source: str, where: str) -> list[str]:
    tree = ast.parse(source)
    found = []
    for line, values in _string_sets(tree):
        for fact, (members, home) in FACTS.items():
            if where != home and members == values:
                found.append(f"{where}:{line} repeats the {fact} (home: {home})")
    for line, name in _calls(tree):
        if name in CALLS and where not in CALLS[name]:
            found.append(f"{where}:{line} calls {name} (only {CALLS[name] or 'nowhere'})")
    return found


def test_every_listed_fact_has_one_home() -> None:
    found = []
    for folder in CODE:
        for path in _modules(folder):
            rel = str(path.relative_to(REPO))
            found += fact_violations(path.read_text(), rel)
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "snippet",
    [
        "LEVELS = ('none', 'partial', 'full')\n",
        "OUT = {'loss': 'lost', 'reject': 'rejected'}\n",
        "COLS = ['true_p_loss', 'true_p_reject']\n",
        "GOODS = ('electronics', 'jewelry')\n",
        "import os\nos.replace('a', 'b')\n",
        "from sklearn.metrics import log_loss\nlog_loss([0], [0.1])\n",
    ],
)
def test_the_fact_check_catches_a_second_definition(snippet: str) -> None:
    assert fact_violations(snippet, "serving/elsewhere.py")


LONG_MODULES = {"data/world.py": "one dataclass: the simulated world's ~90 documented parameters"}
"""Modules allowed past the size limit, with the reason (a table, not logic)."""


def test_stage_modules_stay_small() -> None:
    """A few hundred lines each: a long module is several concerns waiting to be split."""
    too_long = [
        f"{rel} ({n} lines)"
        for stage in STAGES
        for path in _modules(stage)
        if (rel := str(path.relative_to(REPO))) not in LONG_MODULES
        and (n := len(path.read_text().splitlines())) > 520
    ]
    assert not too_long, too_long
