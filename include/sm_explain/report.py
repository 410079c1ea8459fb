"""`python -m sm_explain.report --request R.json --result S.json`: one self-contained `report.html` per run.

Request: {"manifest_uri": "..."} or {"manifest": {...}} (what `python -m sm_explain` returned), "verdict":
{"training_status": str, "final_metrics": {name: value} or [{"MetricName", "Value"}], "rules": [{"name",
"status", "details"}]} (from the sensor), "job_name", "dataset_version", "output_uri", and what only the Airflow
side knows: "links" ({"training_job", "staged_data", "staged_data_console", "previous_report",
"previous_report_console"}, each optional) and "previous_dataset_version". Its rules are the contract's
(`sm_explain_contracts.explain_request.parse_report_request`, which the report task checks too).

The page leads with the verdict (rules, final metrics, the run's facts and links), then a table of contents, then
every figure with a caption that says what it shows and how to read it (`report_captions`), the outliers as a
table with their force plots, and the list of artifacts. PNGs are embedded as data URIs and the interactive force
plots as sandboxed `<iframe srcdoc>` (shap's JS inline), so the page renders with no network and reads without
JavaScript except for those two plots. Only the run's own artifacts (under output_uri, `check_manifest`) are read;
links are shown, never followed. Every name, value and message is HTML-escaped (`report_html`).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from sm_explain import report_html as h
from sm_explain import storage
from sm_explain.errors import BadRequest
from sm_explain.report_captions import FIGURES, IMPORTANCE_TYPES, OUTLIERS_HOW, outliers_what
from sm_explain_contracts.envelope import exit_process, run_cli
from sm_explain_contracts.explain_request import ReportRequest, check_manifest, parse_report_request
from sm_explain_contracts.request_fields import refused_as

REPORT_NAME = "report.html"
_FRAME_HEIGHTS = {"force_row.html": 240, "force_stacked.html": 520}
_OUTLIER_TAILS = ("high", "low")
_CONTRIBUTION_COLUMN = re.compile(r"^feature_(\d+)$")


class _Figures:
    """Draws the manifest's figures in the order the report asks for them, numbering the ones that exist."""

    def __init__(self, artifacts: dict[str, str], summary: dict[str, Any]) -> None:
        self.artifacts = artifacts
        self.summary = summary
        self.count = 0

    def png_of(self, name: str, alt: str) -> str:
        """The artifact `name` (one of the manifest's, so under the run's output) as an embedded PNG."""
        data = base64.b64encode(storage.read_bytes(self.artifacts[name])).decode("ascii")
        return h.png(data, alt)

    def figure(self, name: str) -> tuple[str, tuple[str, str]] | None:
        """(the `<figure>` with its caption, its contents entry), or None when the run has no such artifact."""
        if name not in self.artifacts:
            return None
        spec = FIGURES[name]
        self.count += 1
        if name.endswith(".html"):
            document = storage.read_bytes(self.artifacts[name]).decode("utf-8")
            body = h.interactive_frame(document, spec.title, _FRAME_HEIGHTS.get(name, 420))
        else:
            body = self.png_of(name, spec.title)
        caption = h.caption(self.count, spec.title, spec.what(self.summary), spec.how)
        return f"<figure id='{h.attribute(spec.anchor)}'>{body}{caption}</figure>", (spec.anchor, spec.title)

    def section(self, anchor: str, title: str, names: Sequence[str], intro: str = "",
                extra: str = "") -> h.Section | None:
        drawn = [f for f in (self.figure(name) for name in names) if f is not None]
        if not drawn and not extra:
            return None
        body = (f"<p>{h.text(intro)}</p>" if intro else "") + extra + "".join(html for html, _ in drawn)
        return h.Section(anchor, title, body, [entry for _, entry in drawn])


# --- the verdict ---------------------------------------------------------------------------------------------------

def _final_metrics(verdict: dict[str, Any]) -> list[tuple[str, Any]]:
    """The verdict's final metrics as (name, value) rows; their shape is checked by parse_report_request."""
    metrics = verdict.get("final_metrics") or {}
    if isinstance(metrics, dict):
        return sorted(metrics.items())
    return [(m.get("MetricName", m.get("name", "")), m.get("Value", m.get("value", ""))) for m in metrics
            if isinstance(m, dict)]


def _rules(verdict: dict[str, Any]) -> list[dict[str, Any]]:
    return list(verdict.get("rules") or [])


def _banner(verdict: dict[str, Any]) -> tuple[str, str]:
    """(css class, sentence): the verdict in one line, the worst news first."""
    status = verdict.get("training_status")
    rules = _rules(verdict)
    if not verdict:
        return "", "No verdict was given to this report: the training job's status and its rules are unknown."
    if status not in (None, "Completed"):
        reason = verdict.get("failure_reason")
        return "bad", f"Training ended {status}" + (f": {reason}" if reason else ".")
    names = {s: [str(r.get("name")) for r in rules if r.get("status") == s] for s in
             ("IssuesFound", "Error", "Stopped")}
    if names["IssuesFound"]:
        found = ", ".join(names["IssuesFound"])
        return "bad", (f"{len(names['IssuesFound'])} of {len(rules)} Debugger rules found issues ({found}). The "
                       "run's rule policy let it continue, so these explanations describe a model Debugger flagged.")
    if names["Error"] or names["Stopped"]:
        unanswered = ", ".join(names["Error"] + names["Stopped"])
        return "warn", (f"Training completed, but Debugger rules ended without an answer ({unanswered}); the other "
                        "rules found no issues.")
    if not rules:
        return "", ("Training completed. No Debugger rules ran (Debugger off, or no rules configured): the verdict "
                    "rests on the training status and the final metrics.")
    if all(r.get("status") == "NoIssuesFound" for r in rules):
        return "ok", f"Training completed and all {len(rules)} Debugger rules found no issues."
    return "warn", "Training completed; some Debugger rules have not ended (see their status below)."


def _duration(start: Any, end: Any) -> str:
    try:
        seconds = (dt.datetime.fromisoformat(str(end)) - dt.datetime.fromisoformat(str(start))).total_seconds()
    except (TypeError, ValueError):
        return ""
    return f" ({int(seconds // 60)} min {int(seconds % 60)} s)" if seconds >= 0 else ""


def _source(summary: dict[str, Any]) -> str:
    source = summary.get("source")
    if source == "debugger":
        step = summary.get("shap_step")
        return h.text("debugger: the job's full_shap tensors" + (f" at step {step}" if step is not None else ""))
    if source == "model":
        model_file = summary.get("model_file")
        return h.text("model: exact TreeSHAP from the model artifact" + (f" ({model_file})" if model_file else ""))
    return h.text(source or "unknown")


_CURVE_SOURCE_NAMES = {"debugger": "Debugger's tensors", "model": "the saved model"}


def _curve_name(key: str) -> str:
    if key.startswith("importance_"):
        return f"importance ({key.removeprefix('importance_')})"
    return {"average_shap": "average SHAP"}.get(key, key)


def _curve_sources(summary: dict[str, Any]) -> str:
    """Which curves over steps came from Debugger's tensors and which were recomputed from the model."""
    by_source: dict[str, list[str]] = {}
    for key, source in sorted((summary.get("curve_sources") or {}).items()):
        by_source.setdefault(str(source), []).append(_curve_name(str(key)))
    return "; ".join(f"{h.text(_CURVE_SOURCE_NAMES.get(source, source))}: {h.text(', '.join(keys))}"
                     for source, keys in sorted(by_source.items()))


def _job_link(url: str | None) -> str:
    if not url:
        return ""
    host = urlsplit(url).hostname or ""
    label = "open it in the SageMaker console" if ".console." in f".{host}" else "open its log"
    return " &middot; " + h.web_link(url, label)


def _verdict_section(request: ReportRequest, summary: dict[str, Any]) -> h.Section:
    verdict, links = request.verdict, request.links
    css, sentence = _banner(verdict)
    parts = [f"<p class='banner {css}' id='verdict-summary'>{h.text(sentence)}</p>"]

    rules = _rules(verdict)
    parts.append("<h3 id='rules'>Debugger rules</h3>")
    if rules:
        parts.append(h.table(["Rule", "Status", "Details", "Last evaluated"], [
            (h.text(r.get("name")), h.status(r.get("status")), h.text(r.get("details") or ""),
             h.text(r.get("last_modified") or "")) for r in rules]))
    else:
        parts.append("<p class='note'>No Debugger rules ran for this job.</p>")

    metrics = _final_metrics(verdict)
    parts.append("<h3 id='final-metrics'>Final metrics</h3>")
    if metrics:
        parts.append(h.table(["Metric", "Value"], [(h.text(name), h.number(value, 6)) for name, value in metrics],
                             numeric=[1]))
    else:
        parts.append("<p class='note'>The training job reported no final metrics.</p>")

    parts.append("<h3 id='run'>This run</h3>")
    training = h.status(verdict.get("training_status"))
    if verdict.get("secondary_status") and verdict.get("secondary_status") != verdict.get("training_status"):
        training += f" ({h.text(verdict.get('secondary_status'))})"
    start, end = verdict.get("training_start_time"), verdict.get("training_end_time")
    rows_explained = summary.get("n_rows")
    explained = (f"{rows_explained:,} rows of the {summary.get('explained_rows')} channel, "
                 f"{summary.get('n_features')} features") if isinstance(rows_explained, int) else ""
    previous = ""
    if links.get("previous_report"):
        version = request.previous_dataset_version
        previous = (f"{h.text(version)}: " if version else "") + h.location(
            links["previous_report"], links.get("previous_report_console"), "open it in the S3 console")
    parts.append(h.facts([
        ("Data set version", f"<code>{h.text(request.dataset_version)}</code>"),
        ("Training job", f"<code>{h.text(request.job_name)}</code>{_job_link(links.get('training_job'))}"),
        ("Training status", training),
        ("Training ran", f"{h.text(start)} to {h.text(end)}{h.text(_duration(start, end))}" if start and end else ""),
        ("Explanation source", _source(summary)),
        ("Curves over steps from", _curve_sources(summary)),
        ("Explained rows", h.text(explained)),
        ("Base value (bias)", h.number(summary.get("base_value"), 6) if "base_value" in summary else ""),
        ("Staged files checked", h.text({True: "yes: each file's sha256 matched what staging recorded",
                                         False: "no: staging recorded no checksums"}.get(
                                             summary.get("staged_data_checked"), ""))),
        ("Staged data", h.location(links.get("staged_data"), links.get("staged_data_console"))),
        ("Previous version's report", previous or "<span class='note'>none: no report of an earlier data set "
                                                  "version is known to this run</span>"),
    ]))
    return h.Section("verdict", "Verdict", "".join(parts),
                     [("rules", "Debugger rules"), ("final-metrics", "Final metrics"), ("run", "This run")])


# --- the explanations ----------------------------------------------------------------------------------------------

def _top_features(summary: dict[str, Any]) -> str:
    top = [f for f in summary.get("top_features") or [] if isinstance(f, dict)]
    if not top:
        return ""
    values = [float(f.get("mean_abs_shap") or 0.0) for f in top]
    largest = max(values) or 1.0
    rows = [(str(rank), h.text(f.get("feature")),
             f"<span class='bar' style='width:{8.0 * max(value, 0.0) / largest:.2f}em'></span>"
             f"{h.number(value)}")
            for rank, (f, value) in enumerate(zip(top, values, strict=True), start=1)]
    return h.table(["Rank", "Feature", "mean |SHAP|"], rows,
                   caption="The features that move the predictions most, over every explained row.")


def _read_outliers(artifacts: dict[str, str]) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(storage.read_bytes(artifacts["outliers.csv"]).decode("utf-8")))
    return list(reader)


def _outliers_section(figures: _Figures) -> h.Section | None:
    artifacts = figures.artifacts
    if "outliers.csv" not in artifacts:
        return None
    records = _read_outliers(artifacts)
    columns = sorted({int(m.group(1)) for name in (records[0] if records else {})
                      if (m := _CONTRIBUTION_COLUMN.match(name))})
    header = ["Tail", "Rank", "Row", "z-score", "SHAP sum", "Prediction", "Largest contributions"]
    rows = []
    for record in records:
        tail, rank = record.get("tail", ""), record.get("rank", "")
        anchor = f"outlier-{tail}-{rank}" if tail in _OUTLIER_TAILS and rank.isdigit() else ""
        contributions = "<br>".join(
            f"{h.text(record.get(f'feature_{k}'))} = {h.text(record.get(f'value_{k}'))} "
            f"({h.number(record.get(f'shap_{k}'))})" for k in columns if record.get(f"feature_{k}"))
        cells = [h.text(tail), h.text(rank), h.text(record.get("row")), h.number(record.get("z_score"), 3),
                 h.number(record.get("shap_sum")), h.number(record.get("prediction")), contributions]
        row_id = f" id='{h.attribute(anchor)}'" if anchor else ""
        rows.append(f"<tr class='outlier'{row_id}>" + "".join(
            f"<td class='num'>{cell}</td>" if 1 <= i <= 5 else f"<td>{cell}</td>" for i, cell in enumerate(cells))
            + "</tr>")
        # Only the manifest's own force plot of this tail and rank: a name built from the table is looked up among
        # the artifacts, never read from anywhere else.
        plot = f"outlier_{tail}_{rank}.png"
        if anchor and plot in artifacts:
            alt = f"Force plot of outlier row {record.get('row')} ({tail} tail, rank {rank})"
            force = figures.png_of(plot, alt)
        else:
            force = "<span class='note'>no force plot for this row</span>"
        rows.append(f"<tr class='force'><td colspan='{len(header)}'>{force}</td></tr>")
    head = "".join(f"<th scope='col'>{h.text(name)}</th>" for name in header)
    per_tail = sum(1 for r in records if r.get("tail") == "high")
    figures.count += 1
    caption = h.caption(figures.count, "SHAP outliers", outliers_what(figures.summary, per_tail), OUTLIERS_HOW)
    table = (f"<figure id='fig-outliers'><table class='outliers'><thead><tr>{head}</tr></thead>"
             f"<tbody>{''.join(rows)}</tbody></table>{caption}</figure>")
    if not records:
        table = "<p class='note'>The run found no outliers (no rows were explained).</p>"
    return h.Section("outliers", "Outliers", table, [("fig-outliers", "SHAP outliers")] if records else [])


def render_report(request: ReportRequest, manifest: dict[str, Any]) -> str:
    artifacts: dict[str, str] = manifest["artifacts"]
    summary: dict[str, Any] = manifest.get("summary") or {}
    figures = _Figures(artifacts, summary)
    verdict = _verdict_section(request, summary)
    explained = [section for section in [
        figures.section("training", "How training went", ["metrics.png"]),
        figures.section("global", "What drives the model", ["shap_bar.png", "shap_beeswarm.png"],
                        extra=_top_features(summary)),
        figures.section("one-row", "One prediction explained", ["force_row.png", "force_row.html"]),
        figures.section("many-rows", "Many predictions side by side", ["force_stacked.html"]),
        _outliers_section(figures),
        figures.section("over-steps", "How the model changed while it trained",
                        [f"importance_{kind}.png" for kind in IMPORTANCE_TYPES] + ["average_shap.png"],
                        intro="XGBoost's feature importance (five measures) and the average SHAP value, for the "
                              "model after each boosting round."),
    ] if section is not None]
    listing = h.Section("artifacts", "Artifacts", h.table(
        ["Name", "Location"], [(h.text(name), f"<code>{h.text(uri)}</code>") for name, uri in sorted(artifacts.items())],
        caption="Every file this run's explanation wrote; the figures above are embedded from them."))
    sections = [verdict, *explained, listing]
    title = f"Explanations of training job {request.job_name}"
    return "".join([
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{h.text(title)}, data set version {h.text(request.dataset_version)}</title>",
        f"<style>{h.STYLE}</style></head><body>",
        f"<header><h1>{h.text(title)}</h1><p class='subtitle'>Data set version "
        f"<code>{h.text(request.dataset_version)}</code> &middot; explanation source {_source(summary)}</p></header>",
        "<main>",
        verdict.html(),
        h.contents(sections),
        "<noscript><p class='note'>JavaScript is off: the two interactive force plots stay empty; every other "
        "figure is an image and reads as it is.</p></noscript>",
        *(section.html() for section in sections[1:]),
        "</main></body></html>\n",
    ])


# --- the entry point -----------------------------------------------------------------------------------------------

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


def build_report(raw: dict[str, Any]) -> dict[str, Any]:
    with refused_as(BadRequest):
        request = parse_report_request(raw)
    manifest = request.manifest
    if manifest is None:
        assert request.manifest_uri is not None  # parse_report_request gives one of the two
        manifest = _read_manifest(request.manifest_uri, request.output_uri)
    html_text = render_report(request, manifest)
    report_uri = storage.join(request.output_uri, REPORT_NAME)
    storage.write_bytes(report_uri, html_text.encode("utf-8"), "text/html; charset=utf-8")
    return {"report_uri": report_uri}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, "Write the self-contained HTML report of one explanation run.", build_report, BadRequest)


if __name__ == "__main__":
    exit_process(main())
