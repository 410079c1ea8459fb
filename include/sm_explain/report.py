"""`python -m sm_explain.report --request R.json --result S.json`: one self-contained `report.html` per run.

Request: {"manifest_uri": "..."} or {"manifest": {...}} (what `python -m sm_explain` returned), "verdict":
{"training_status": str, "final_metrics": {name: value} or [{"MetricName", "Value"}], "rules": [{"name",
"status", "details"}]} (from the sensor), "job_name", "dataset_version", "output_uri". PNGs are embedded as
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
    metrics = verdict.get("final_metrics") or {}
    if isinstance(metrics, dict):
        return sorted(metrics.items())
    if isinstance(metrics, list):
        return [(m.get("MetricName", m.get("name", "")), m.get("Value", m.get("value", ""))) for m in metrics
                if isinstance(m, dict)]
    raise BadRequest("verdict.final_metrics must be an object or a list of {MetricName, Value}")


def _rules(verdict: dict[str, Any]) -> list[tuple[str, str, str]]:
    rules = verdict.get("rules") or []
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise BadRequest("verdict.rules must be a list of {name, status, details}")
    return [(str(r.get("name", "")), str(r.get("status", "")), str(r.get("details", "") or "")) for r in rules]


def _require_under_output(uri: str, what: str, output_uri: str) -> None:
    """The report embeds what it reads: only the run's own artifacts, never another object or a file of the
    worker (an edited manifest could name /proc/self/environ, which holds the connection's secret key)."""
    if not storage.is_under(uri, output_uri):
        raise BadRequest(
            f"{what} {uri!r} is not under the run's output location {output_uri!r}: the report reads only the "
            "run's own artifacts"
        )


def _load_manifest(request: dict[str, Any], output_uri: str) -> dict[str, Any]:
    if isinstance(request.get("manifest"), dict):
        manifest = request["manifest"]
    elif "manifest_uri" in request:
        uri = storage.validate_uri(request["manifest_uri"], "manifest_uri")
        _require_under_output(uri, "manifest_uri", output_uri)
        if not storage.exists(uri):
            raise BadRequest(f"manifest_uri {uri!r} does not exist")
        try:
            manifest = json.loads(storage.read_bytes(uri))
        except ValueError as exc:
            raise BadRequest(f"manifest_uri {uri!r} is not valid JSON: {exc}") from exc
    else:
        raise BadRequest("the request needs 'manifest_uri' or 'manifest' (the result of python -m sm_explain)")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("artifacts"), dict):
        raise BadRequest("the manifest must be an object with an 'artifacts' map")
    for name, uri in manifest["artifacts"].items():
        storage.validate_uri(uri, f"manifest artifact {name!r}")
        _require_under_output(uri, f"manifest artifact {name!r}", output_uri)
    return manifest


def _required_string(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"the request needs {key!r} as a non-empty string, got {value!r}")
    return value


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


def build_report(request: dict[str, Any]) -> dict[str, Any]:
    job_name = _required_string(request, "job_name")
    dataset_version = _required_string(request, "dataset_version")
    output_uri = storage.validate_uri(_required_string(request, "output_uri"), "output_uri")
    verdict = request.get("verdict", {})
    if not isinstance(verdict, dict):
        raise BadRequest("verdict must be an object (training status, final metrics, rules)")
    _rules(verdict)
    _final_metrics(verdict)
    manifest = _load_manifest(request, output_uri)
    html_text = render_report(manifest, verdict, job_name, dataset_version)
    report_uri = storage.join(output_uri, REPORT_NAME)
    storage.write_bytes(report_uri, html_text.encode("utf-8"), "text/html; charset=utf-8")
    return {"report_uri": report_uri}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, "Write the self-contained HTML report of one explanation run.", build_report, BadRequest)


if __name__ == "__main__":
    sys.exit(main())
