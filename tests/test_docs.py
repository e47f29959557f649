"""The README is a short front page whose links resolve; the docs keep up with the code they describe.

`make docs` (part of `make test`) builds docs/ with `mkdocs build --strict`, which checks every link, anchor
and the nav; these tests cover what mkdocs does not see: the README (outside docs/) and facts the pages list.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgecnn.metadata import KEYS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _pages() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def test_readme_is_a_short_front_page() -> None:
    size = README.stat().st_size
    assert size <= 10 * 1024, f"README.md is {size} bytes; move detail into docs/ (limit 10 KB)"


def test_readme_quick_start_is_the_two_make_commands() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in block.strip().splitlines()] == ["make demo", "make test"]
    assert (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().endswith("make test")


def test_readme_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    targets = [t for t in LINK.findall(text) if not t.startswith(("http://", "https://", "#"))]
    assert targets, "the README links into docs/"
    missing = [t for t in targets if not (ROOT / t.split("#")[0]).exists()]
    assert not missing, f"README links to missing files: {missing}"
    linked = {Path(t.split("#")[0]).name for t in targets if t.startswith("docs/")}
    unlinked = sorted(p.name for p in (ROOT / "docs").glob("*.md") if p.name not in linked)
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def test_metadata_page_lists_every_key() -> None:
    text = (ROOT / "docs" / "inspect.md").read_text(encoding="utf-8")
    missing = [key for key in KEYS if f"`edgecnn.{key}`" not in text]
    assert not missing, f"docs/inspect.md does not describe metadata keys {missing} (edgecnn/metadata.py)"


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_user_text_cites_papers_not_course_material(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    hits = re.findall(r"\b(?:the seeds?|seeds? \d{3}|lectures?)\b", text, flags=re.IGNORECASE)
    assert not hits, f"{page.name} cites {hits}: cite the paper (authors, year, table) instead"
