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


# A latency or speed figure: a number followed by ms, x/× (a ratio: not 3x224x224, 1x1 or "2 × MACs"), GFLOP/s or
# "% of peak". Such figures live in results files (docs/results/, written by tools/bench_*.py with the machine
# they ran on) that pages include; README.md and docs/*.md may hold them only where ALLOWED_FIGURES says why.
FIGURE = re.compile(r"""(?<![\w.×x-])\d+(?:[.,]\d+)?(?:
      \s?ms\b
    | [×x](?![\w×])
    | \s?GFLOP/s
    | \s?%\ of\ (?:the\ )?peak
    )""", re.X)
ALLOWED_FIGURES = {
    ("README.md", "486.6 GFLOP/s"): "the transcript of what `make demo` printed, with its machine named above it",
}
RESULTS = ROOT / "docs" / "results"
INCLUDE = re.compile(r'^--8<-- "(docs/results/[^"]+)"\s*$', re.M)


def test_figure_pattern_finds_figures_not_dimensions() -> None:
    hits = FIGURE.findall("p50 8.32 ms, 2.9x ORT, 1.90× bf16, 436.6 GFLOP/s, 90% of peak; 3x224x224, 1x1, 2 × MACs")
    assert hits == ["8.32 ms", "2.9x", "1.90×", "436.6 GFLOP/s", "90% of peak"]


def test_no_hand_typed_figures_outside_results_files() -> None:
    assert len(ALLOWED_FIGURES) <= 10
    found = {(page.name, m.group(0)) for page in _pages() for m in FIGURE.finditer(page.read_text(encoding="utf-8"))}
    stray = sorted(found - set(ALLOWED_FIGURES))
    assert not stray, ("latency/speed figures typed into pages (put them in a results file written by a "
                       f"tools/bench_*.py script and include it): {stray}")
    stale = sorted(set(ALLOWED_FIGURES) - found)
    assert not stale, f"ALLOWED_FIGURES entries no page holds any more: {stale}"


def test_results_files_name_their_machine_and_every_include_resolves() -> None:
    files = sorted(RESULTS.glob("*.md"))
    assert files, "docs/results/ holds the results files the pages include"
    for f in files:
        text = f.read_text(encoding="utf-8")
        machine = re.search(r"^Machine: (.+)$", text, re.M)
        assert machine and re.search(r"(AVX|NEON).*onnxruntime", machine.group(1)), \
            f"{f.name} does not name its machine (CPU model, the flags that decide kernels, versions)"
        # a generated file names the CPU exactly; one transcribed from an older run says so in its first line
        assert text.startswith("<!-- transcribed") or re.search(r"family \d+, model \d+|aarch64", machine.group(1))
        assert (f.with_suffix(".json")).is_file(), f"{f.name} has no .json beside it"
    included = {inc for page in _pages() for inc in INCLUDE.findall(page.read_text(encoding="utf-8"))}
    missing = sorted(i for i in included if not (ROOT / i).is_file())
    assert not missing, f"pages include results files that do not exist: {missing}"
    unused = sorted(f.name for f in files if f"docs/results/{f.name}" not in included)
    assert not unused, f"results files no page includes: {unused}"


def test_cli_reference_is_current() -> None:
    """In a fresh process: a plug-in backend another test registered would otherwise appear in --provider's help."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_cli_docs.py"), "--check"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr


def test_ci_runs_the_quick_start_demo_before_the_tests() -> None:
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines.index("make demo") < lines.index("make test")
