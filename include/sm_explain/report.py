"""`python -m sm_explain.report --request R.json --result S.json`: one self-contained `report.html` per run.

Request: {"manifest_uri": "..."} or {"manifest": {...}} (what `python -m sm_explain` returned), "verdict":
{"training_status": str, "final_metrics": {name: value} or [{"MetricName", "Value"}], "rules": [{"name",
"status", "details"}]} (from the sensor), "job_name", "dataset_version", "output_uri"; its rules are the contract's
(`sm_explain_contracts.explain_request.parse_report_request`, which the report task checks too). PNGs are embedded as
data URIs and the interactive force plots as `<iframe srcdoc>` (shap's JS inline), so the page renders with
no network. Every name, value and message is HTML-escaped.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import sys
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from sm_explain import storage
from sm_explain.errors import BadRequest
from sm_explain_contracts.envelope import run_cli
from sm_explain_contracts.explain_request import check_manifest, parse_report_request
from sm_explain_contracts.request_fields import refused_as

REPORT_NAME = "report.html"
_FIGURE_SECTIONS: list[tuple[str, list[str]]] = [
    ("Metrics per step", ["metrics.png"]),
    ("Global SHAP: mean |SHAP| and beeswarm", ["shap_bar.png", "shap_beeswarm.png"]),
    ("Average SHAP per step", ["average_shap.png"]),
    ("Feature importance per step", [f"importance_{t}.png" for t in
                                     ("weight", "gain", "cover", "total_gain", "total_cover")]),
    ("Force plot of the chosen row", ["force_row.png"]),
]
_INTERACTIVE = [("Interactive force plot of the chosen row", "force_row.html"),
                ("Stacked force plot of a seeded sample", "force_stacked.html")]
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f3f3f3}img{max-width:100%;display:block;margin:0.5em 0 1.5em}
.IssuesFound,.Error,.Failed{color:#b00020;font-weight:bold}.NoIssuesFound,.Completed{color:#1b7f3b;font-weight:bold}
iframe{width:100%;border:1px solid #ccc;margin-bottom:1.5em}code{word-break:break-all}
"""


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], status_column: int | None = None) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            css = f" class='{escape(str(value), quote=True)}'" if i == status_column else ""
            cells.append(f"<td{css}>{escape(str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _final_metrics(verdict: dict[str, Any]) -> list[tuple[str, Any]]:
    """The verdict's final metrics as (name, value) rows; their shape is checked by parse_report_request."""
    metrics = verdict.get("final_metrics") or {}
    if isinstance(metrics, dict):
        return sorted(metrics.items())
    return [(m.get("MetricName", m.get("name", "")), m.get("Value", m.get("value", ""))) for m in metrics
            if isinstance(m, dict)]


def _rules(verdict: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(str(r.get("name", "")), str(r.get("status", "")), str(r.get("details", "") or ""))
            for r in verdict.get("rules") or []]


def _read_manifest(uri: str, output_uri: str) -> dict[str, Any]:
    """The manifest behind `manifest_uri` (already checked to lie under the output), checked as an inline one."""
    if not storage.exists(uri):
        raise BadRequest(f"manifest_uri {uri!r} does not exist")
    try:
        manifest = json.loads(storage.read_bytes(uri))
    except ValueError as exc:
        raise BadRequest(f"manifest_uri {uri!r} is not valid JSON: {exc}") from exc
    with refused_as(BadRequest):
        return check_manifest(manifest, output_uri)


def _figure(artifacts: dict[str, str], name: str) -> str:
    if name not in artifacts:
        return ""
    data = base64.b64encode(storage.read_bytes(artifacts[name])).decode("ascii")
    return f"<img alt='{escape(name, quote=True)}' src='data:image/png;base64,{data}'>"


def _outlier_section(artifacts: dict[str, str]) -> str:
    if "outliers.csv" not in artifacts:
        return ""
    reader = csv.reader(io.StringIO(storage.read_bytes(artifacts["outliers.csv"]).decode("utf-8")))
    header, *rows = list(reader)
    parts = ["<h2>SHAP outliers (z-score of each row's SHAP sum)</h2>", _table(header, rows)]
    for name in sorted(n for n in artifacts if n.startswith("outlier_") and n.endswith(".png")):
        parts.append(f"<h3>{escape(name[:-4])}</h3>{_figure(artifacts, name)}")
    return "".join(parts)


def render_report(manifest: dict[str, Any], verdict: dict[str, Any], job_name: str, dataset_version: str) -> str:
    artifacts: dict[str, str] = manifest["artifacts"]
    summary: dict[str, Any] = manifest.get("summary", {})
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Explanations: {escape(job_name)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Training job {escape(job_name)}</h1>",
        _table(["", ""], [
            ("Data set version", dataset_version),
            ("Training status", verdict.get("training_status", "unknown")),
            ("Explanation source", summary.get("source", "")),
            ("Explained rows", f"{summary.get('explained_rows', '')} ({summary.get('n_rows', '')} rows, "
                               f"{summary.get('n_features', '')} features)"),
            ("Base value (bias)", summary.get("base_value", "")),
        ]),
        "<h2>Debugger rules</h2>",
        _table(["Rule", "Status", "Details"], _rules(verdict), status_column=1),
        "<h2>Final metrics</h2>",
        _table(["Metric", "Value"], _final_metrics(verdict)),
        "<h2>Top features by mean |SHAP|</h2>",
        _table(["Feature", "mean |SHAP|"], [(f.get("feature", ""), f.get("mean_abs_shap", ""))
                                            for f in summary.get("top_features", [])]),
    ]
    for title, names in _FIGURE_SECTIONS:
        figures = "".join(_figure(artifacts, n) for n in names)
        if figures:
            parts.append(f"<h2>{escape(title)}</h2>{figures}")
    for title, name in _INTERACTIVE:
        if name in artifacts:
            document = storage.read_bytes(artifacts[name]).decode("utf-8")
            parts.append(f"<h2>{escape(title)}</h2><iframe title='{escape(name, quote=True)}' height='420' "
                         f"sandbox='allow-scripts' srcdoc=\"{escape(document, quote=True)}\"></iframe>")
    parts.append(_outlier_section(artifacts))
    parts.append("<h2>Artifacts</h2>")
    parts.append(_table(["Name", "URI"], sorted(artifacts.items())))
    parts.append("</body></html>\n")
    return "".join(parts)


def build_report(raw: dict[str, Any]) -> dict[str, Any]:
    with refused_as(BadRequest):
        request = parse_report_request(raw)
    manifest = request.manifest
    if manifest is None:
        assert request.manifest_uri is not None  # parse_report_request gives one of the two
        manifest = _read_manifest(request.manifest_uri, request.output_uri)
    html_text = render_report(manifest, request.verdict, request.job_name, request.dataset_version)
    report_uri = storage.join(request.output_uri, REPORT_NAME)
    storage.write_bytes(report_uri, html_text.encode("utf-8"), "text/html; charset=utf-8")
    return {"report_uri": report_uri}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, "Write the self-contained HTML report of one explanation run.", build_report, BadRequest)


if __name__ == "__main__":
    sys.exit(main())
