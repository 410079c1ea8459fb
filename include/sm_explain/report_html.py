"""The HTML pieces of `report.html`: every helper escapes what it is given, so the report's sections never build
markup from data themselves. Feature names, versions, job names, rule details and URLs are untrusted (they come
from the staged data, the DAG's params and XCom): text is `html.escape`d, attribute values with quotes too, and a
link becomes an `<a>` only for an http(s) URL (the request contract already refuses any other scheme; this is
the second check)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

STYLE = """
:root{--ok:#1b7f3b;--bad:#b00020;--warn:#8a5a00;--muted:#555;--line:#d0d0d0}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;padding:1.5em 2em;color:#222;
max-width:1200px;line-height:1.45}
h1{margin:0 0 .2em;font-size:1.7em}h2{margin-top:2em;border-bottom:1px solid var(--line);padding-bottom:.2em}
h3{margin-top:1.5em}.subtitle{color:var(--muted);margin:0 0 1em}
table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid var(--line);padding:4px 8px;
text-align:left;vertical-align:top}thead th{background:#f3f3f3}th[scope=row]{background:#fafafa;font-weight:600;
white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.banner{font-size:1.1em;padding:.7em 1em;border-left:6px solid var(--muted);background:#f6f6f6}
.banner.ok{border-color:var(--ok);background:#eef7f0}.banner.bad{border-color:var(--bad);background:#fbeef0}
.banner.warn{border-color:var(--warn);background:#fbf5e9}
.status{font-weight:600}.status.ok{color:var(--ok)}.status.bad{color:var(--bad)}.status.warn{color:var(--warn)}
nav#contents{background:#f8f8f8;border:1px solid var(--line);padding:.5em 1.5em;margin:1.5em 0}
nav#contents h2{margin-top:.5em;border:0}nav#contents ol ol{margin:.1em 0 .3em}
figure{margin:1em 0 2em;padding:0}figure img{max-width:100%;display:block;border:1px solid #eee}
figcaption{color:#333;font-size:.95em;margin-top:.5em;max-width:75em}figcaption .how{display:block;margin-top:.3em;
color:var(--muted)}
iframe{width:100%;border:1px solid var(--line)}
code{word-break:break-all;font-size:.92em}
.bar{display:inline-block;height:.8em;background:#4a7fb5;vertical-align:middle;margin-right:.4em}
tr.force td{padding:0 0 .8em;border-top:0}tr.force img{max-width:100%;display:block}
.note{color:var(--muted)}
@media print{nav#contents{display:none}iframe{display:none}}
"""

# The rule and training statuses a reader should see as good, bad or uncertain (the text always says it too).
_STATUS_CLASSES = {
    "NoIssuesFound": "ok", "Completed": "ok",
    "IssuesFound": "bad", "Error": "bad", "Failed": "bad",
    "Stopped": "warn", "Stopping": "warn", "InProgress": "warn",
}


def text(value: Any) -> str:
    return escape("" if value is None else str(value))


def attribute(value: Any) -> str:
    """A value for a quoted attribute."""
    return escape("" if value is None else str(value), quote=True)


def number(value: Any, digits: int = 4) -> str:
    """A number to `digits` significant digits (text that is no number is shown as it is), escaped."""
    try:
        return text(f"{float(value):.{digits}g}")
    except (TypeError, ValueError):
        return text(value)


def status(value: Any) -> str:
    """A status as a span coloured by what it means; the class comes from a fixed list, never from the value."""
    css = _STATUS_CLASSES.get(str(value), "")
    return f"<span class='status {css}'>{text(value if value is not None else 'unknown')}</span>"


def web_link(url: str | None, label: str) -> str:
    """An `<a>` to an http(s) page that opens beside the report; anything else is shown as plain text."""
    if not url:
        return ""
    if url.split(":", 1)[0].lower() not in ("http", "https"):
        return f"<code>{text(url)}</code>"
    return f"<a href='{attribute(url)}' target='_blank' rel='noopener noreferrer'>{text(label)}</a>"


def location(uri: str | None, console_url: str | None, console_label: str = "open in the S3 console") -> str:
    """An S3 location as text (a browser cannot open s3://), with its console page beside it when there is one."""
    parts = [f"<code>{text(uri)}</code>"] if uri else []
    if console_url:
        parts.append(web_link(console_url, console_label))
    return " &middot; ".join(parts)


def table(header: Sequence[str], rows: Iterable[Sequence[str]], *, caption: str | None = None,
          numeric: Iterable[int] = ()) -> str:
    """A table whose cells are HTML already made by the helpers above (the header is text)."""
    right = set(numeric)
    head = "".join(f"<th scope='col'>{text(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td class='num'>{cell}</td>" if i in right else f"<td>{cell}</td>"
                         for i, cell in enumerate(row)) + "</tr>"
        for row in rows
    )
    title = f"<caption class='note'>{text(caption)}</caption>" if caption else ""
    return f"<table>{title}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def facts(rows: Iterable[tuple[str, str]]) -> str:
    """A two-column table of (label text, value HTML), the label as the row's header."""
    body = "".join(f"<tr><th scope='row'>{text(label)}</th><td>{value}</td></tr>" for label, value in rows if value)
    return f"<table class='facts'><tbody>{body}</tbody></table>"


def png(data_b64: str, alt: str) -> str:
    return f"<img alt='{attribute(alt)}' src='data:image/png;base64,{data_b64}'>"


def interactive_frame(document: str, title: str, height: int) -> str:
    """A page of its own (shap's force plot with its JavaScript inline) in a sandboxed frame: its scripts run
    with an opaque origin, so they can neither read this report nor reach the network as it."""
    return (f"<iframe title='{attribute(title)}' height='{int(height)}' sandbox='allow-scripts' "
            f"srcdoc=\"{attribute(document)}\"></iframe>")


def caption(number_: int, title: str, what: str, how: str) -> str:
    return (f"<figcaption><strong>Figure {number_}. {text(title)}.</strong> {text(what)} "
            f"<span class='how'><strong>How to read it:</strong> {text(how)}</span></figcaption>")


@dataclass
class Section:
    """One `<section>` of the report and its entry (with its figures' entries) in the table of contents."""

    anchor: str
    title: str
    body: str
    entries: list[tuple[str, str]] = field(default_factory=list)  # (anchor, title) of its figures

    def html(self) -> str:
        return f"<section id='{attribute(self.anchor)}'><h2>{text(self.title)}</h2>{self.body}</section>"


def contents(sections: Sequence[Section]) -> str:
    items = []
    for section in sections:
        children = "".join(f"<li><a href='#{attribute(anchor)}'>{text(title)}</a></li>"
                           for anchor, title in section.entries)
        items.append(f"<li><a href='#{attribute(section.anchor)}'>{text(section.title)}</a>"
                     + (f"<ol>{children}</ol>" if children else "") + "</li>")
    return f"<nav id='contents' aria-label='Contents'><h2>Contents</h2><ol>{''.join(items)}</ol></nav>"
