"""Docs do not rot: no placeholders, no development-machine paths, no dead relative links in
any tracked Markdown file (a newcomer reads these before any code)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PLACEHOLDER = re.compile(r"\b(MEASURED|TODO|TBD|XXX|FIXME)\b")
MACHINE_PATH = re.compile(r"(?<![\w.~-])(/(work|home|root|tmp|Users|mnt|private)/|[A-Z]:\\\\)")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _markdown_files() -> list[Path]:
    """Tracked *.md files (git), or every *.md outside hidden and generated folders."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "*.md"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.split()
        files = [REPO / f for f in out]
    except (OSError, subprocess.CalledProcessError):
        files = []
    if not files:
        files = [
            p
            for p in REPO.rglob("*.md")
            if not any(part.startswith(".") for part in p.relative_to(REPO).parts)
        ]
    return sorted(f for f in files if f.is_file())


FILES = _markdown_files()


def test_the_docs_are_found() -> None:
    names = {str(f.relative_to(REPO)) for f in FILES}
    assert {"README.md", "CHANGELOG.md", "data/README.md", "docs/policy.md"} <= names


@pytest.mark.parametrize("path", FILES, ids=[str(f.relative_to(REPO)) for f in FILES])
def test_no_placeholders_machine_paths_or_dead_links(path: Path) -> None:
    problems = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        for match in PLACEHOLDER.finditer(line):
            problems.append(f"line {number}: placeholder {match.group(1)!r}")
        for match in MACHINE_PATH.finditer(line):
            problems.append(f"line {number}: machine path {match.group(0)!r}")
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+:|^#", target):
                continue  # a URL or an anchor in the same file
            if not (path.parent / target.split("#", 1)[0]).exists():
                problems.append(f"line {number}: dead link {target!r}")
    assert not problems, "\n".join(problems)


def test_the_checks_catch_what_they_claim() -> None:
    assert PLACEHOLDER.search("accuracy: MEASURED")
    assert MACHINE_PATH.search("see /work/shared/domain-facts.md")
    assert MACHINE_PATH.search("`/home/dev/x`") and MACHINE_PATH.search("(/tmp/out.csv)")
    assert not MACHINE_PATH.search("data/reference/x.csv or ./tmp/ or a/home/b")
