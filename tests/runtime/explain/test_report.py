"""`python -m sm_explain.report` read as a reader reads it: the verdict comes first, the contents lead to every
section, every figure says what it shows and how to read it, the outliers are a table with their force plots, and
nothing a run's data, names or links hold can add markup or script to the page. With Debugger on (a real trial) and
off (the model only), with rules that found issues and with no rules."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from sm_explain.explain import run_explanations
from sm_explain.request import parse_request
from tests.runtime.explain.test_explain_runs import (
    FEATURES,
    NOTEBOOK_COLLECTIONS,
    OUTLIER_N,
    SCRIPT_NAME,
    _write_job,
)

# Starts real processes (the runtime CLI, the image environment that trains the job): not in `make test-fast`.
pytestmark = pytest.mark.process

HOSTILE_JOB = "job-1<img src=x onerror=alert(1)>"
HOSTILE_URL = "https://example.org/jobs/x?'\"><script>alert(1)</script>"
LINKS = {
    "training_job": HOSTILE_URL,
    "staged_data": "s3://sm-explain-report/adult/v2/data/abc/",
    "staged_data_console": "https://s3.console.aws.amazon.com/s3/buckets/sm-explain-report?prefix=adult/v2/data/abc/",
    "previous_report": "s3://sm-explain-report/adult/v1/job-0/explanations/report.html",
    "previous_report_console": "https://s3.console.aws.amazon.com/s3/object/sm-explain-report?prefix=adult/v1/",
}
ISSUES_VERDICT = {
    "job_name": "job-1", "training_status": "Completed", "secondary_status": "Completed",
    "final_metrics": {"validation:error": 0.11, f"train:{SCRIPT_NAME}": 0.25},
    "rules": [
        {"name": "LossNotDecreasing", "status": "IssuesFound", "details": f"loss rose at step 4 {SCRIPT_NAME}",
         "last_modified": "2026-11-22T10:00:00+00:00"},
        {"name": f"Overfit{SCRIPT_NAME}", "status": "NoIssuesFound", "details": None},
    ],
    "issues_found": ["LossNotDecreasing"],
    "training_start_time": "2026-11-22T09:50:00+00:00", "training_end_time": "2026-11-22T09:53:10+00:00",
}
NO_RULES_VERDICT = {"job_name": "job-1", "training_status": "Completed", "final_metrics": {"validation:rmse": 0.3},
                    "rules": []}
SECTIONS = ["verdict", "training", "global", "one-row", "many-rows", "outliers", "over-steps", "artifacts"]
VOID = {"img", "meta", "br", "hr", "input", "link", "source", "col", "area", "base", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    parent: Element | None
    content: list[Element | str] = field(default_factory=list)  # child elements and text, in document order

    @property
    def children(self) -> list[Element]:
        return [item for item in self.content if isinstance(item, Element)]

    def all_text(self) -> str:
        return "".join(item if isinstance(item, str) else item.all_text() for item in self.content)

    def ancestors(self) -> list[Element]:
        found, node = [], self.parent
        while node is not None:
            found.append(node)
            node = node.parent
        return found

    def find(self, tag: str | None = None, **attrs: str) -> list[Element]:
        hits = [self] if (tag is None or self.tag == tag) and all(
            (self.attrs.get(k.rstrip("_")) or "").split().count(v) if k.rstrip("_") == "class"
            else self.attrs.get(k.rstrip("_")) == v for k, v in attrs.items()) else []
        return hits + [hit for child in self.children for hit in child.find(tag, **attrs)]


class _Tree(HTMLParser):
    """The document as a tree of elements, in document order; fails on a closing tag that closes nothing."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {}, None)
        self.node = self.root
        self.order: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs), self.node)
        self.node.content.append(element)
        self.order.append(element)
        if tag not in VOID:
            self.node = element

    def handle_endtag(self, tag: str) -> None:
        assert self.node.tag == tag, f"</{tag}> closes <{self.node.tag}>"
        self.node = self.node.parent  # type: ignore[assignment]

    def handle_data(self, data: str) -> None:
        self.node.content.append(data)


@dataclass
class Report:
    html: str
    tree: _Tree

    def by_id(self, anchor: str) -> Element:
        [element] = [e for e in self.tree.order if e.attrs.get("id") == anchor]
        return element


def _parse(text: str) -> Report:
    tree = _Tree()
    tree.feed(text)
    tree.close()
    assert tree.node is tree.root, "every element is closed"
    return Report(text, tree)


def _run_report(request: dict[str, Any], tmp_path: Path) -> Report:
    request_file, result_file = tmp_path / "request.json", tmp_path / "result.json"
    request_file.write_text(json.dumps(request))
    completed = subprocess.run(
        [sys.executable, "-m", "sm_explain.report", "--request", str(request_file), "--result", str(result_file)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "SM_EXPLAIN_ALLOW_LOCAL_SOURCES": "1"})
    assert completed.returncode == 0, completed.stderr
    return _parse(Path(json.loads(result_file.read_text())["report_uri"]).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def debugger_job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    job = _write_job(tmp_path_factory.mktemp("debugger-job"), NOTEBOOK_COLLECTIONS)
    return {"job": job, "manifest": run_explanations(parse_request({**job, "source": "debugger"}))}


@pytest.fixture(scope="module")
def model_job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Debugger off: no trial at all, every figure from the model artifact."""
    job = _write_job(tmp_path_factory.mktemp("model-job"), None)
    return {"job": job, "manifest": run_explanations(parse_request(job))}


def _request(run: dict[str, Any], verdict: dict[str, Any], **extra: Any) -> dict[str, Any]:
    job = run["job"]
    return {"manifest_uri": run["manifest"]["artifacts"]["manifest.json"], "verdict": verdict,
            "job_name": job["job_name"], "dataset_version": "v2", "output_uri": job["output_uri"], **extra}


def _check_reads_alone(report: Report) -> None:
    """Self-contained and readable without JavaScript: no script in the page, nothing fetched, each image a
    real embedded PNG, every internal link resolves."""
    tags = report.tree.order
    assert not [e for e in tags if e.tag in ("script", "link", "object", "embed")]
    assert not [e for e in tags if any(name.startswith("on") for name in e.attrs)]  # no event handler attributes
    for image in report.tree.root.find("img"):
        source = image.attrs["src"] or ""
        assert source.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).verify()
    for frame in report.tree.root.find("iframe"):
        assert frame.attrs["sandbox"] == "allow-scripts" and "src" not in frame.attrs  # srcdoc only, no same origin
    for anchor in report.tree.root.find("a"):
        href = anchor.attrs["href"] or ""
        assert href.startswith(("#", "https://", "http://")), href
        if href.startswith("#"):
            report.by_id(href[1:])  # exactly one element has that id


def _check_order_and_contents(report: Report) -> None:
    main = report.tree.root.find("main")[0]
    blocks = [child for child in main.children if child.tag in ("section", "nav")]
    assert [b.attrs.get("id") for b in blocks] == ["verdict", "contents", *SECTIONS[1:]]  # the verdict leads
    first_figure = report.tree.order.index(report.tree.root.find("figure")[0])
    assert report.tree.order.index(report.by_id("verdict")) < report.tree.order.index(report.by_id("contents"))
    assert report.tree.order.index(report.by_id("contents")) < first_figure
    listed = [a.attrs["href"] for a in report.by_id("contents").find("a")]
    assert [href for href in listed if href[1:] in SECTIONS] == [f"#{s}" for s in SECTIONS]
    figure_ids = {f.attrs["id"] for f in report.tree.root.find("figure")}
    assert figure_ids <= {href[1:] for href in listed}  # every figure is in the contents


def _check_captions(report: Report) -> list[str]:
    """Every image and frame sits in a figure with a caption saying what it shows and how to read it; the captions
    differ, and count up."""
    figures = report.tree.root.find("figure")
    for element in report.tree.root.find("img") + report.tree.root.find("iframe"):
        assert any(a.tag == "figure" for a in element.ancestors()), element.attrs.get("alt")
    captions = []
    for number, figure in enumerate(figures, start=1):
        [caption] = [c for c in figure.children if c.tag == "figcaption"]
        text = caption.all_text()
        assert text.startswith(f"Figure {number}. ") and "How to read it:" in text, text
        assert len(text.split("How to read it:")[0]) > 120 and len(text.split("How to read it:")[1]) > 60, text
        captions.append(text)
    assert len(set(captions)) == len(captions)
    return captions


def _check_outliers(report: Report, run: dict[str, Any]) -> None:
    with open(run["manifest"]["artifacts"]["outliers.csv"], encoding="utf-8") as handle:
        expected = list(csv.DictReader(handle))
    table = report.by_id("fig-outliers").find("table")[0]
    rows = table.find("tbody")[0].children
    assert len(rows) == 2 * len(expected) == 4 * OUTLIER_N
    for record, row, force in zip(expected, rows[::2], rows[1::2], strict=True):
        assert row.attrs["id"] == f"outlier-{record['tail']}-{record['rank']}"
        cells = [cell.all_text() for cell in row.children]
        assert cells[:3] == [record["tail"], record["rank"], record["row"]]
        assert f"{float(record['z_score']):.3g}" == cells[3]
        assert record["feature_1"] in cells[6] and record["value_1"] in cells[6]
        [image] = force.find("img")
        assert image.attrs["alt"] == f"Force plot of outlier row {record['row']} ({record['tail']} tail, rank " \
                                     f"{record['rank']})"
        embedded = base64.b64decode((image.attrs["src"] or "").split(",", 1)[1])
        plot = run["manifest"]["artifacts"][f"outlier_{record['tail']}_{record['rank']}.png"]
        assert embedded == Path(plot).read_bytes()  # that row's own force plot


def test_report_leads_with_an_issues_found_verdict_and_links(debugger_job: dict[str, Any], tmp_path: Path) -> None:
    report = _run_report(_request(debugger_job, ISSUES_VERDICT, links=LINKS, previous_dataset_version="v1"),
                         tmp_path)
    _check_reads_alone(report)
    _check_order_and_contents(report)
    captions = _check_captions(report)
    assert len(captions) == 10 + 2 + 1  # the PNG figures, the two interactive plots, the outlier table
    _check_outliers(report, debugger_job)

    verdict = report.by_id("verdict")
    banner = report.by_id("verdict-summary")
    assert "bad" in banner.attrs["class"].split() and "1 of 2 Debugger rules found issues (LossNotDecreasing)" in (
        banner.all_text())
    rules = [[c.all_text() for c in row.children] for row in verdict.find("table")[0].find("tbody")[0].children]
    assert rules == [["LossNotDecreasing", "IssuesFound", f"loss rose at step 4 {SCRIPT_NAME}",
                      "2026-11-22T10:00:00+00:00"], [f"Overfit{SCRIPT_NAME}", "NoIssuesFound", "", ""]]
    metrics = [[c.all_text() for c in row.children] for row in verdict.find("table")[1].find("tbody")[0].children]
    assert metrics == [[f"train:{SCRIPT_NAME}", "0.25"], ["validation:error", "0.11"]]
    facts = {row.children[0].all_text(): row.children[1] for row in verdict.find("table")[2].find("tr")}
    assert facts["Data set version"].all_text() == "v2"
    assert facts["Explanation source"].all_text().startswith("debugger: the job's full_shap tensors at step")
    assert facts["Training ran"].all_text().endswith("(3 min 10 s)")
    [job_link] = facts["Training job"].find("a")
    assert job_link.attrs["href"] == HOSTILE_URL and job_link.attrs["rel"] == "noopener noreferrer"
    assert [a.attrs["href"] for a in facts["Staged data"].find("a")] == [LINKS["staged_data_console"]]
    assert LINKS["staged_data"] in facts["Staged data"].all_text()
    previous = facts["Previous version's report"]
    assert previous.all_text().startswith(f"v1: {LINKS['previous_report']}")
    assert [a.attrs["href"] for a in previous.find("a")] == [LINKS["previous_report_console"]]
    # The curves of a Debugger trial say so in their captions; the SHAP figures name the tensors' step.
    assert "Recorded by SageMaker Debugger" in report.by_id("fig-metrics").all_text()
    assert "full_shap tensors at step" in report.by_id("fig-shap-bar").all_text()


def test_report_escapes_every_name_value_and_link(debugger_job: dict[str, Any], tmp_path: Path) -> None:
    """A feature name, a job name, rule names and details, a metric name and a link that each try to add markup."""
    request = _request(debugger_job, ISSUES_VERDICT, links=LINKS, previous_dataset_version="v1")
    report = _run_report({**request, "job_name": HOSTILE_JOB}, tmp_path)
    for hostile in (SCRIPT_NAME, HOSTILE_JOB, "<script>alert(1)</script>"):
        assert hostile not in report.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report.html
    _check_reads_alone(report)  # no script, no event handler: the hostile strings stayed text
    assert report.tree.root.find("h1")[0].all_text() == f"Explanations of training job {HOSTILE_JOB}"
    assert HOSTILE_JOB in report.tree.root.find("title")[0].all_text()
    top = [row.children[1].all_text() for row in report.by_id("global").find("table")[0].find("tbody")[0].children]
    assert sorted(top) == sorted(FEATURES)  # the feature names, as text


def test_report_refuses_a_script_link_and_a_hostile_version(debugger_job: dict[str, Any], tmp_path: Path) -> None:
    for change, message in [
        ({"links": {"training_job": "javascript:alert(1)"}}, "which has the scheme 'javascript'"),
        ({"dataset_version": "<b>v2</b>"}, "dataset_version '<b>v2</b>' is invalid"),
        ({"links": LINKS, "previous_dataset_version": "v1'><script>"}, "previous_dataset_version: dataset_version"),
    ]:
        request_file, result_file = tmp_path / "request.json", tmp_path / "result.json"
        request_file.write_text(json.dumps({**_request(debugger_job, ISSUES_VERDICT), **change}))
        completed = subprocess.run([sys.executable, "-m", "sm_explain.report", "--request", str(request_file),
                                    "--result", str(result_file)], capture_output=True, text=True, timeout=300,
                                   env={**os.environ, "SM_EXPLAIN_ALLOW_LOCAL_SOURCES": "1"})
        assert completed.returncode == 2, completed.stderr
        assert message in json.loads(result_file.read_text())["error"]["message"]


def test_report_with_debugger_off_and_no_rules(model_job: dict[str, Any], tmp_path: Path) -> None:
    report = _run_report(_request(model_job, NO_RULES_VERDICT, links={
        "training_job": "http://127.0.0.1:8123/jobs/job-1/log", "staged_data": LINKS["staged_data"]}), tmp_path)
    _check_reads_alone(report)
    _check_order_and_contents(report)
    assert len(_check_captions(report)) == 13
    _check_outliers(report, model_job)
    banner = report.by_id("verdict-summary").all_text()
    assert "No Debugger rules ran" in banner and "Debugger off" in banner
    assert "No Debugger rules ran for this job." in report.by_id("verdict").all_text()
    verdict = report.by_id("verdict")
    facts = {row.children[0].all_text(): row.children[1] for row in verdict.find("table", class_="facts")[0].find("tr")}
    assert facts["Explanation source"].all_text().startswith("model: exact TreeSHAP from the model artifact")
    assert [a.attrs["href"] for a in facts["Training job"].find("a")] == ["http://127.0.0.1:8123/jobs/job-1/log"]
    assert facts["Training job"].find("a")[0].all_text() == "open its log"
    assert facts["Staged data"].find("a") == []  # no console locally: the location as text
    assert facts["Previous version's report"].all_text().startswith("none")
    # Without a trial every curve is the model's, and the captions say so.
    for anchor in ("fig-metrics", "fig-average-shap", "fig-importance-weight", "fig-importance-total-cover"):
        assert "Recomputed from the saved model" in report.by_id(anchor).all_text()
    assert "computed exactly (TreeSHAP) from the model artifact" in report.by_id("fig-shap-beeswarm").all_text()


def test_report_without_a_verdict_says_so(model_job: dict[str, Any], tmp_path: Path) -> None:
    request = {key: value for key, value in _request(model_job, {}).items() if key != "verdict"}
    report = _run_report(request, tmp_path)
    _check_order_and_contents(report)
    assert "No verdict was given" in report.by_id("verdict-summary").all_text()
    facts = {row.children[0].all_text(): row.children[1].all_text()
             for row in report.by_id("verdict").find("table", class_="facts")[0].find("tr")}
    assert facts["Training status"] == "unknown"


# What the explanations need and the report does not: a report process that loaded them would pay seconds of start-up.
SHAP_STACK = ("xgboost", "numpy", "pandas", "shap", "matplotlib", "smdebug", "sklearn")
LOADED_PROBE = """import atexit, json, runpy, sys
loaded_file, heavy = sys.argv[1], sys.argv[2].split(",")
atexit.register(lambda: open(loaded_file, "w").write(json.dumps(sorted(m for m in heavy if m in sys.modules))))
sys.argv = ["sm_explain.report", *sys.argv[3:]]
runpy.run_module("sm_explain.report", run_name="__main__", alter_sys=True)
"""


def test_the_report_process_never_loads_the_shap_stack(model_job: dict[str, Any], tmp_path: Path) -> None:
    """The report reads the manifest and the figures and writes HTML: its process (a processing job of its own on
    SageMaker) starts without xgboost, numpy, pandas, shap, matplotlib or smdebug, and still writes the page."""
    request_file, result_file, loaded_file = tmp_path / "request.json", tmp_path / "result.json", tmp_path / "loaded"
    request_file.write_text(json.dumps(_request(model_job, NO_RULES_VERDICT)))
    completed = subprocess.run(
        [sys.executable, "-c", LOADED_PROBE, str(loaded_file), ",".join(SHAP_STACK),
         "--request", str(request_file), "--result", str(result_file)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "SM_EXPLAIN_ALLOW_LOCAL_SOURCES": "1"})
    assert completed.returncode == 0, completed.stderr
    assert json.loads(loaded_file.read_text()) == []
    report = _parse(Path(json.loads(result_file.read_text())["report_uri"]).read_text(encoding="utf-8"))
    _check_order_and_contents(report)
