"""The results page of `lggan evaluate --html`: every image's label map, generated image, real photo and the
segmenter's prediction side by side with its own scores, sortable, the set's scores and the protocol on top (what
SPADE's test script's HTML page shows, with the numbers)."""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from .io import atomic_write_text

TEMPLATE = "assets/results_page.html"


@dataclass
class PageRow:
    """One image: its name, the pictures of its columns (paths or None) and its scores (None: not scored)."""

    name: str
    images: dict[str, Path | None]
    scores: dict[str, float | None] = field(default_factory=dict)


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else "n/a"


def _picture(path: Path | None, page_dir: Path, alt: str) -> str:
    if path is None:
        return "<td></td>"
    src = Path(os.path.relpath(Path(path).resolve(), page_dir.resolve())).as_posix()
    return f'<td><img src="{html.escape(src)}" alt="{html.escape(alt)}" loading="lazy"></td>'


def page_html(title: str, rows: Sequence[PageRow], columns: Sequence[str], score_names: Sequence[str],
              summary: Mapping[str, Any], protocol: Mapping[str, Any], page_dir: Path) -> str:
    """The page's HTML: pictures are linked relative to `page_dir`, where the page is written."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["image", *columns])
    head += "".join(f'<th class="score" data-score="{html.escape(s)}">{html.escape(s)}</th>' for s in score_names)
    body = []
    for row in rows:
        cells = [f"<td>{html.escape(row.name)}</td>"]
        cells += [_picture(row.images.get(c), page_dir, f"{c} {row.name}") for c in columns]
        for s in score_names:
            v = row.scores.get(s)
            data = f"{v!r}" if isinstance(v, (int, float)) else ""
            cells.append(f'<td class="score" data-value="{data}">{_number(v)}</td>')
        body.append(f'<tr data-name="{html.escape(row.name)}">{"".join(cells)}</tr>')
    table = (f'<table id="lggan-images"><thead><tr>{head}</tr></thead><tbody>\n' + "\n".join(body)
             + "\n</tbody></table>")
    summary_rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_number(v)}</td></tr>" for k, v in summary.items())
    template = resources.files("lggan").joinpath(TEMPLATE).read_text(encoding="utf-8")
    filled = {
        "{{TITLE}}": html.escape(title), "{{COUNT}}": f"{len(rows)} image{'s' if len(rows) != 1 else ''}",
        "{{SUMMARY}}": f'<table class="summary" id="lggan-summary">{summary_rows}</table>',
        "{{PROTOCOL}}": html.escape(json.dumps(protocol, indent=2)), "{{TABLE}}": table,
    }
    for key, value in filled.items():
        template = template.replace(key, value)
    return template


def write_results_page(path: str | os.PathLike, title: str, rows: Sequence[PageRow], columns: Sequence[str],
                       score_names: Sequence[str], summary: Mapping[str, Any], protocol: Mapping[str, Any]) -> Path:
    """Writes the page (atomically) to `path`; the pictures stay where they are, linked relatively."""
    path = Path(path)
    atomic_write_text(path, page_html(title, rows, columns, score_names, summary, protocol, path.parent))
    return path
