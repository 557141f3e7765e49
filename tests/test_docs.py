"""The README and docs stay a product's pages: every link resolves, every figure of the README's
results table comes from the results ledger, and no text labels a number with a round of work.
(That docs/results.md is what benchmarks/report.py writes: tests/test_ledger.py.)"""

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")  # not the 8 of int8


def _tracked_text_files():
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in names.splitlines():
        path = ROOT / name
        if path.suffix in {".png", ".jpg", ".tflite", ".keras", ".h5"} or not path.is_file():
            continue
        yield name, path.read_text(errors="replace")


def test_no_text_labels_a_number_with_a_round_of_work():
    label = re.compile(r"\bsessions?\s+[0-9]", re.I)
    found = [
        f"{name}:{i}"
        for name, text in _tracked_text_files()
        for i, line in enumerate(text.splitlines(), 1)
        if label.search(line)
    ]
    assert not found, f"round-of-work labels: {found}"


def _anchors(page):
    """GitHub's heading slugs (with -1, -2 for repeats) and explicit <a id> anchors."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    anchors, seen = set(re.findall(r'<a id="([^"]+)"', text)), {}
    for heading in re.findall(r"^#{1,6} +(.+?) *$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower().replace("`", "")).replace(" ", "-")
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_resolves(page):
    broken = []
    for target in LINK.findall(re.sub(r"```.*?```", "", page.read_text(), flags=re.S)):
        if re.match(r"[a-z]+:", target):  # https:, mailto:: outside the repository
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"


def _results_rows():
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Results\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|") and not line.startswith("|---")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[1:]]


def test_readme_results_table_quotes_the_ledger():
    rows = _results_rows()
    assert len(rows) >= 5
    for what, result in rows:
        ids = re.findall(r"\(docs/results\.md#([\w-]+)\)", result)
        assert ids, f"{what}: no link to a ledger entry"
        quoted = set()
        for entry_id in ids:
            entry = json.loads((ROOT / "results" / f"{entry_id}.json").read_text())
            quoted |= {n for figure in entry["summary"].values() for n in NUMBER.findall(str(figure))}
        figures = NUMBER.findall(re.sub(r"\(docs/results\.md#[\w-]+\)", "", result))
        missing = [n for n in figures if n not in quoted]
        assert not missing, f"{what}: {missing} are in no summary of {ids}"
