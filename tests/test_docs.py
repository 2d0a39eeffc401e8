"""The documentation stays true: docs/cli.md matches the parsers, and no relative link is broken."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
#: [text](target) and ![alt](target); the target ends at the first space or closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def relative_links(path: Path) -> list[str]:
    """Link targets of a Markdown file that point into the repository (not URLs, not in code blocks)."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code
    targets = [m.group(1) for m in LINK.finditer(text)]
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t, re.I) and not t.startswith("#")]


def test_cli_reference_is_current():
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "gen_cli_docs.py"), "--check"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert done.returncode == 0, ("docs/cli.md is stale: run python scripts/gen_cli_docs.py\n"
                                  + done.stdout + done.stderr)


def test_the_documents_are_there():
    names = {p.name for p in DOCS}
    assert {"README.md", "cli.md", "formats.md", "reports.md", "CONVENTIONS.md", "physics.md"} <= names


@pytest.mark.parametrize("path", DOCS, ids=[p.relative_to(REPO_ROOT).as_posix() for p in DOCS])
def test_relative_links_point_to_existing_files(path: Path):
    broken = []
    for target in relative_links(path):
        file_part = target.split("#", 1)[0]
        if file_part and not (path.parent / file_part).exists():
            broken.append(target)
    assert broken == [], f"{path.relative_to(REPO_ROOT)}: broken link(s) {broken}"


def test_the_link_finder_finds_links(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text("See [a](docs/a.md#x), ![pic](images/p.png \"title\"), [web](https://x.org), "
                    "[anchor](#top), `[not](code.md)`\n```\n[nor](this.md)\n```\n", encoding="utf-8")
    assert relative_links(page) == ["docs/a.md#x", "images/p.png"]
