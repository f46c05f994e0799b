"""A tiny document model rendered twice: Markdown (images as relative links to the PNGs)
and one self-contained HTML file (images embedded as base64 data URIs, inline CSS).

Inline text uses a Markdown subset: `code`, **bold**; "Table N" / "Figure N" become links in HTML."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Block:
    kind: str  # heading | para | bullets | table | figure
    text: str = ""
    level: int = 2
    items: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    align: str = ""  # one letter per column: l or r
    label: str = ""
    path: Path | None = None


class Document:
    def __init__(self, title: str) -> None:
        self.title = title
        self.blocks: list[Block] = []
        self._tables = 0
        self._figures = 0

    def heading(self, text: str, level: int = 2, into: list | None = None) -> None:
        (self.blocks if into is None else into).append(Block("heading", text, level=level))

    def para(self, text: str, into: list | None = None) -> None:
        (self.blocks if into is None else into).append(Block("para", text))

    def bullets(self, items: list[str], into: list | None = None) -> None:
        if items:
            (self.blocks if into is None else into).append(Block("bullets", items=list(items)))

    def table(self, caption: str, header: list[str], rows: list[list[str]], align: str = "",
              label: str | None = None, into: list | None = None) -> str:
        """Add a numbered table (or one with the given label, unnumbered); returns its label ("Table 3")."""
        if label is None:
            self._tables += 1
            label = f"Table {self._tables}"
        (self.blocks if into is None else into).append(
            Block("table", caption, header=header, rows=rows, align=align or "l" * len(header), label=label))
        return label

    def figure(self, caption: str, path: Path, label: str | None = None, into: list | None = None) -> str:
        """Add a numbered PNG figure (or one with the given label, unnumbered); returns its label ("Figure 2")."""
        if label is None:
            self._figures += 1
            label = f"Figure {self._figures}"
        (self.blocks if into is None else into).append(Block("figure", caption, label=label, path=Path(path)))
        return label

    # ---------------------------------------------------------------- Markdown
    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if b.kind == "heading":
                out += ["#" * b.level + " " + b.text, ""]
            elif b.kind == "para":
                out += [b.text, ""]
            elif b.kind == "bullets":
                out += [f"- {item}" for item in b.items] + [""]
            elif b.kind == "table":
                out += [f"**{b.label}.** {b.text}", ""]
                out.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
                out.append("|" + "|".join("---:" if a == "r" else "---" for a in b.align) + "|")
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
                out.append("")
            elif b.kind == "figure":
                out += [f"![{b.label}]({b.path.name})", "", f"**{b.label}.** {b.text}", ""]
        return "\n".join(out).rstrip() + "\n"

    # ---------------------------------------------------------------- HTML
    def to_html(self) -> str:
        body = [f"<h1>{_inline(self.title)}</h1>"]
        for b in self.blocks:
            if b.kind == "heading":
                level = min(max(b.level, 2), 6)
                body.append(f'<h{level} id="{_slug(b.text)}">{_inline(b.text)}</h{level}>')
            elif b.kind == "para":
                body.append(f"<p>{_inline(b.text)}</p>")
            elif b.kind == "bullets":
                body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
            elif b.kind == "table":
                head = "".join(f'<th class="{a}">{_inline(h)}</th>' for h, a in zip(b.header, b.align))
                rows = "".join("<tr>" + "".join(f'<td class="{a}">{_inline(c)}</td>' for c, a in zip(row, b.align))
                               + "</tr>" for row in b.rows)
                body.append(f'<table id="{_slug(b.label)}"><caption><b>{b.label}.</b> {_inline(b.text)}</caption>'
                            f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif b.kind == "figure":
                data = base64.b64encode(b.path.read_bytes()).decode("ascii")
                body.append(f'<figure id="{_slug(b.label)}"><img alt="{b.label}" src="data:image/png;base64,{data}">'
                            f"<figcaption><b>{b.label}.</b> {_inline(b.text)}</figcaption></figure>")
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;
color:#1a1a1a;line-height:1.45}
table{border-collapse:collapse;margin:1rem 0 1.5rem;font-size:.9rem}
caption{caption-side:top;text-align:left;padding:.3rem 0}
th,td{border-bottom:1px solid #ddd;padding:.25rem .6rem}th{background:#f3f3f3}
td.r,th.r{text-align:right;font-variant-numeric:tabular-nums}td.l,th.l{text-align:left}
figure{margin:1rem 0 2rem}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9rem;color:#333}code{background:#f3f3f3;padding:0 .2rem}
h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2.5rem}
"""


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _inline(text: str) -> str:
    out = html.escape(str(text), quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"\b(Table|Figure) (\d+|X)\b", lambda m: f'<a href="#{m[1].lower()}-{m[2].lower()}">{m[0]}</a>', out)
