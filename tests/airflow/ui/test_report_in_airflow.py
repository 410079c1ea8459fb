"""The explanation report inside Airflow, as a user sees it: a real api-server, scheduler, dag-processor and
triggerer on the local stack, driven by headless Chromium (Debian's chromium and chromium-driver, selenium).

The browser logs in (the simple auth manager's form), triggers a cheap run of the production DAG (Debugger
"default", 30 rounds), opens the run's "Explanation report" tab and checks that every figure of the report loaded,
then saves a screenshot (build/test-artifacts/ui/; SM_EXPLAIN_README_SCREENSHOT=1 also writes the README's
docs/images/report-in-airflow.png). Over plain HTTP: anonymous requests get 401, a user the auth manager refuses
for the DAG 403, keys outside the run's explanations 404; the tasks' extra links point where they should.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest

from tests.airflow.ui.airflow_services import AirflowServices, start_airflow, stop_airflow

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.process]

REPO = Path(__file__).resolve().parents[3]
DAG_ID = "adult_income_explainability"
BUCKET = "sm-explain-ui"
ADULT_SHA256 = "df25a4e32ed6f1bd4b3910d21a7bd661a09061eced7cb45555a519d9667cc87b"
PASSWORDS = {"admin": "admin-ui-test", "viewer": "viewer-ui-test", "outsider": "outsider-ui-test"}
ROLES = {"admin": "admin", "viewer": "viewer", "outsider": "viewer"}
ARTIFACTS = REPO / "build" / "test-artifacts" / "ui"
README_SCREENSHOT = REPO / "docs" / "images" / "report-in-airflow.png"
RUN_TIMEOUT = 300.0


def _browser_paths() -> tuple[str, str]:
    """Debian's chromium and chromedriver; missing, the test skips on a developer's machine and fails in CI (which
    installs them: .ci/run)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    problem = None
    try:
        import selenium  # noqa: F401
    except ImportError:
        problem = "selenium is not installed (requirements-dev.txt)"
    if not chromium or not driver:
        problem = "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{problem}: CI must run the browser test")
        pytest.skip(problem)
    return str(chromium), str(driver)


@pytest.fixture(scope="module")
def airflow(local_stack, tmp_path_factory) -> Iterator[AirflowServices]:
    _browser_paths()
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    services = start_airflow(
        local_stack, tmp_path_factory.mktemp("airflow-ui"), dag_files=[REPO / "dags" / f"{DAG_ID}.py"],
        passwords=PASSWORDS, roles=ROLES, refused=f"outsider:{DAG_ID}",
    )
    try:
        yield services
    finally:
        stop_airflow(services)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium, driver_path = _browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,1100",
                     "--disable-gpu", "--no-first-run"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(condition: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _log_in(browser: Any, airflow: AirflowServices, user: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(airflow.base_url + "/")
    _wait(lambda: browser.find_elements(By.NAME, "username"), 30, "the login form")
    browser.find_element(By.NAME, "username").send_keys(user)
    browser.find_element(By.NAME, "password").send_keys(PASSWORDS[user])
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(lambda: "/auth/login" not in browser.current_url, 30, "the login to finish")


def _trigger_in_browser(browser: Any, conf: dict[str, Any]) -> str:
    """POST the run from the logged-in page (its cookie is the user's credential, as the UI's own requests)."""
    status, body = browser.execute_async_script(
        """const [dagId, conf, done] = arguments;
        fetch(`/api/v2/dags/${dagId}/dagRuns`, {method: "POST", credentials: "same-origin",
              headers: {"Content-Type": "application/json"}, body: JSON.stringify({logical_date: null, conf})})
          .then(r => r.json().then(j => done([r.status, j]))).catch(e => done([0, String(e)]));""",
        DAG_ID, conf)
    assert status == 200, (status, body)
    return str(body["dag_run_id"])


def _run_state(airflow: AirflowServices, token: str, run_id: str) -> tuple[str, dict[str, str]]:
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}"
    run = json.loads(airflow.request("GET", path, token=token)[2])
    tasks = json.loads(airflow.request("GET", path + "/taskInstances", token=token)[2])["task_instances"]
    return run["state"], {task["task_id"]: task["state"] for task in tasks}


def _report_images(browser: Any) -> list[dict[str, Any]]:
    return browser.execute_script(
        "return Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth}))")


@pytest.fixture(scope="module")
def finished_run(airflow, browser, adult_data_path) -> dict[str, Any]:
    """One cheap run, triggered by the admin in the browser; its id, the admin's token and the artifacts."""
    _log_in(browser, airflow, "admin")
    conf = {
        "dataset_version": "ui-e2e", "source_uri": str(adult_data_path), "source_sha256": ADULT_SHA256,
        "bucket": BUCKET, "debugger": "default",
        "hyperparameters": {"max_depth": 5, "eta": 0.2, "gamma": 4, "min_child_weight": 6, "subsample": 0.7,
                            "objective": "binary:logistic", "num_round": 30},
    }
    run_id = _trigger_in_browser(browser, conf)
    token = airflow.token("admin", PASSWORDS["admin"])
    seen: dict[str, Any] = {}

    def ended() -> bool:
        seen["state"], seen["tasks"] = _run_state(airflow, token, run_id)
        return seen["state"] in ("success", "failed")

    _wait(ended, RUN_TIMEOUT, f"the run {run_id} to end", interval=2)
    assert seen["state"] == "success", f"{seen}\n{airflow.log_tails()}"
    listing = airflow.request("GET", f"/sm-explain/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/artifacts",
                              token=token)
    assert listing[0] == 200, listing
    return {"run_id": run_id, "token": token, "artifacts": json.loads(listing[2])}


def test_the_run_page_shows_the_report_with_every_figure(airflow, browser, finished_run) -> None:
    from selenium.webdriver.common.by import By

    run_id = finished_run["run_id"]
    browser.get(f"{airflow.base_url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}")
    tab = _wait(lambda: [e for e in browser.find_elements(By.XPATH, "//*[normalize-space(text())='Explanation report']")
                         if e.is_displayed()], 30, "the Explanation report tab")[0]
    tab.click()
    frame = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "iframe[title='Explanation report']"), 30,
                  "the report's iframe")[0]
    assert "/plugin/sm-explain-run-report" in browser.current_url
    browser.switch_to.frame(frame)
    try:
        pngs = [item for item in finished_run["artifacts"]["artifacts"] if item["content_type"] == "image/png"]
        assert len(pngs) >= 5, finished_run["artifacts"]

        def loaded() -> list[dict[str, Any]] | None:
            ready = browser.execute_script("return document.readyState") == "complete"
            found = _report_images(browser)
            return found if ready and found and all(image["complete"] for image in found) else None

        images = _wait(loaded, 60, "every figure of the report to load")
        assert browser.execute_script("return location.pathname").endswith("/files/report.html")
        assert browser.find_element(By.TAG_NAME, "h1").text.strip()
        # The report embeds its figures (one self-contained file): each one decoded to a real picture.
        assert len(images) >= 5, images
        assert [image for image in images if not image["width"] > 0] == [], images
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.switch_to.default_content()
        browser.save_screenshot(str(ARTIFACTS / "report-top.png"))
        browser.switch_to.frame(frame)
        # The picture for the README: the global SHAP figure (or the first figure) in the tab.
        browser.execute_script("const figure = document.getElementById('fig-shap-bar')"
                               " || document.querySelector(\"img[alt*='shap_bar']\") || document.images[0];"
                               "figure.scrollIntoView({block: 'start'}); window.scrollBy(0, -12)")
    finally:
        browser.switch_to.default_content()
    time.sleep(0.5)  # the scroll's repaint before the picture
    screenshot = ARTIFACTS / "report-in-airflow.png"
    assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000
    if os.environ.get("SM_EXPLAIN_README_SCREENSHOT") == "1":
        shutil.copyfile(screenshot, README_SCREENSHOT)


def test_the_report_tab_of_the_report_task(airflow, browser, finished_run) -> None:
    from selenium.webdriver.common.by import By

    run = quote(finished_run["run_id"], safe="")
    browser.get(f"{airflow.base_url}/dags/{DAG_ID}/runs/{run}/tasks/report/plugin/sm-explain-task-report")
    frame = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "iframe[title='Explanation report']"), 30,
                  "the task's report iframe")[0]
    browser.switch_to.frame(frame)
    try:
        _wait(lambda: browser.execute_script("return location.pathname").endswith("/files/report.html"), 30,
              "the report in the task's tab")
    finally:
        browser.switch_to.default_content()


def test_anonymous_refused_and_outside_requests(airflow, finished_run) -> None:
    run = f"/sm-explain/dags/{DAG_ID}/runs/{quote(finished_run['run_id'], safe='')}"
    admin = finished_run["token"]
    outsider = airflow.token("outsider", PASSWORDS["outsider"])
    viewer = airflow.token("viewer", PASSWORDS["viewer"])
    for path in ("/report", "/files/report.html", "/files/shap_bar.png", "/artifacts", "/staged"):
        assert airflow.request("GET", run + path)[0] == 401, path
        assert airflow.request("GET", run + path, token=outsider)[0] == 403, path
        assert airflow.request("GET", run + path, token=viewer)[0] in (200, 307), path
    status, headers, body = airflow.request("GET", run + "/files/shap_bar.png", cookie=viewer)
    assert status == 200 and headers["content-type"] == "image/png" and body.startswith(b"\x89PNG")
    explanations = finished_run["artifacts"]["explanations_uri"]
    version_root = explanations.removeprefix(f"s3://{BUCKET}/").split("/explanations/")[0].rsplit("/", 1)[0]
    for outside in ("../../data/", "../../training/", "..%2F..%2Fprocessing%2F", "%2e%2e/manifest.json",
                    f"{version_root}/data/", "features.json", "/etc/passwd"):
        status, _, body = airflow.request("GET", run + "/files/" + outside, token=admin)
        assert status == 404, (outside, status, body[:200])
    assert airflow.request("GET", f"/sm-explain/dags/{DAG_ID}/runs/nope/report", token=admin)[0] == 404


def test_the_tasks_extra_links(airflow, finished_run, local_stack) -> None:
    run = quote(finished_run["run_id"], safe="")

    def links(task_id: str) -> dict[str, str]:
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run}/taskInstances/{task_id}/links"
        return json.loads(airflow.request("GET", path, token=finished_run["token"])[2])["extra_links"]

    endpoint = local_stack.sagemaker_endpoint.rstrip("/")
    plugin_run = f"/sm-explain/dags/{DAG_ID}/runs/{run}"
    for task_id in ("start_training", "wait_for_training_and_rules"):
        found = links(task_id)
        assert found["SageMaker Training Job"].startswith(endpoint + "/jobs/"), found
        assert found["Training job logs (CloudWatch)"] == found["SageMaker Training Job"]
    for task_id in ("explain", "report"):
        assert links(task_id)["Explanation report"] == plugin_run + "/report"
    assert links("stage_dataset")["Staged data"] == plugin_run + "/staged"
    status, _, body = airflow.request("GET", links("stage_dataset")["Staged data"], token=finished_run["token"])
    assert status == 200 and b"features.json" in body
    # Each link the page shows answers: the job's log page on the local endpoint.
    import urllib.request

    with urllib.request.urlopen(links("start_training")["SageMaker Training Job"], timeout=30) as answer:
        assert answer.status == 200
