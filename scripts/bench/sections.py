"""The one way a benchmark puts its numbers into a markdown file (docs/BENCHMARKS.md)."""
from __future__ import annotations

from pathlib import Path


def replace_section(path: Path, section: str) -> None:
    """Put `section` (markdown whose first line is its `## ` heading) where the section with that
    heading is in `path`, or append it; every other section stays as it was, so each benchmark
    can rewrite its own numbers without touching the others'."""
    heading = section.split("\n", 1)[0]
    lines = (path.read_text() if path.exists() else "# Benchmarks\n").rstrip().split("\n")
    new = section.rstrip().split("\n")
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines = lines[:start] + new + ([""] if end < len(lines) else []) + lines[end:]
    else:
        lines += [""] + new
    path.write_text("\n".join(lines) + "\n")
