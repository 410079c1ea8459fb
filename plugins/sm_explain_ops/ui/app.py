"""The FastAPI app the plugin mounts on the api-server at ``/sm-explain``: a run's report and artifacts from S3.

Routes (``{dag_id}`` and ``{run_id}`` URL-encoded):

- ``GET /sm-explain/dags/{dag_id}/runs/{run_id}/report``: 307 to ``files/report.html`` once the report task
  wrote it; before that, a page of the artifacts the explain task made; 404 (a short page) for a run without any;
- ``GET /sm-explain/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/report``: the same for the explain and report
  task pages (Airflow shows a task-instance tab on every task: other tasks get a 404 page saying where to look);
- ``GET /sm-explain/dags/{dag_id}/runs/{run_id}/files/{name}``: one object, by its key relative to the run's
  explanations prefix, streamed from S3 with its content type; only the report and the manifest's artifacts;
- ``GET /sm-explain/dags/{dag_id}/runs/{run_id}/artifacts``: those objects as JSON (name, URL, content type);
- ``GET /sm-explain/dags/{dag_id}/runs/{run_id}/staged``: a page listing what stage_dataset wrote (keys and
  sizes, no content).

Every route first asks Airflow who the user is (the JWT of the ``Authorization: Bearer`` header or of the
``_token`` cookie the UI's login sets, which the report tab's iframe sends: it is same-origin) and answers 401
without one; then asks the configured auth manager whether that user may read the DAG's runs
(``is_authorized_dag(GET, DagAccessEntity.RUN)``) and answers 403 when not. Only then does it look at the run.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from html import escape
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sm_explain_ops.ui.paths import (
    EXPLAIN_TASK_ID,
    MAX_LISTED_OBJECTS,
    MAX_OBJECT_BYTES,
    REPORT_NAME,
    REPORT_TASK_ID,
    REPORT_TASK_IDS,
    STAGE_TASK_ID,
    NoExplanations,
    S3Prefix,
    artifact_names,
    content_type,
    explanations_prefix,
    response_headers,
    served_objects,
    staged_prefix,
)
from sm_explain_ops.ui.run_outputs import RunOutputs, load_run_outputs

CHUNK_BYTES = 1024 * 1024
#: Our own pages load nothing from elsewhere and run no script.
PAGE_POLICY = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'"
_STYLE = ("body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:0.25em 0.6em;text-align:left}img{max-width:100%;display:block}"
          "code{background:#f3f3f3;padding:0 0.2em}")
_bearer = HTTPBearer(auto_error=False)


class RunSource:
    """Where the app reads from; the api-server's is Airflow's metadata database and the run's AWS connection
    (the Amazon provider's S3Hook). Tests hand the app another."""

    def team_name(self, dag_id: str) -> str | None:
        from airflow.configuration import conf

        if not conf.getboolean("core", "multi_team", fallback=False):
            return None
        from airflow.models.dag import DagModel

        return DagModel.get_team_name(dag_id)

    def outputs(self, dag_id: str, run_id: str) -> RunOutputs | None:
        return load_run_outputs(dag_id, run_id)

    def s3_client(self, aws_conn_id: str) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=aws_conn_id).get_conn()


# ------------------------------------------------------------------------------------------------ auth
async def current_user(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Any:
    """The user, as Airflow's own routes find them (``airflow.api_fastapi.core_api.security.get_user``): the bearer
    token, else the user the JWT refresh middleware took from the ``_token`` cookie, else that cookie. 401 for
    none or an expired one, 403 for an invalid one (Airflow's answers)."""
    from airflow.api_fastapi.core_api.security import get_user

    return await get_user(request, None, credentials)


def authorized_run(request: Request, dag_id: str, user: Annotated[Any, Depends(current_user)]) -> Any:
    """403 unless the auth manager lets ``user`` read the runs of ``dag_id``."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    source: RunSource = request.app.state.source
    allowed = get_auth_manager().is_authorized_dag(
        method="GET", access_entity=DagAccessEntity.RUN,
        details=DagDetails(id=dag_id, team_name=source.team_name(dag_id)), user=user,
    )
    if not allowed:
        raise HTTPException(403, f"you may not read the runs of the DAG {dag_id!r}")
    return user


# ------------------------------------------------------------------------------------------------ helpers
def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>\n",
        status_code=status_code,
        headers={"Content-Security-Policy": PAGE_POLICY, "X-Content-Type-Options": "nosniff",
                 "Cache-Control": "private, no-cache"},
    )


def _run_outputs(request: Request, dag_id: str, run_id: str) -> RunOutputs:
    outputs = request.app.state.source.outputs(dag_id, run_id)
    if outputs is None:
        raise HTTPException(404, f"the DAG {dag_id!r} has no run {run_id!r}")
    return outputs


def _explanations(outputs: RunOutputs) -> tuple[S3Prefix, dict[str, str]]:
    report, manifest = outputs.result(REPORT_TASK_ID), outputs.result(EXPLAIN_TASK_ID)
    try:
        prefix = explanations_prefix(report, manifest)
    except NoExplanations as error:
        raise HTTPException(404, str(error)) from None
    return prefix, served_objects(prefix, report, manifest)


def _report_page(request: Request, dag_id: str, run_id: str, files_base: str) -> Response:
    """The report (a redirect to it), else the explain task's artifacts, else a 404 page."""
    outputs = _run_outputs(request, dag_id, run_id)
    try:
        prefix, served = _explanations(outputs)
    except HTTPException as error:
        return _page("No explanation report", f"<p>{escape(str(error.detail))}.</p><p>The report of a run of "
                     "an sm-explain-ops pipeline appears here once its <code>report</code> task has run.</p>", 404)
    if REPORT_NAME in served:
        return RedirectResponse(f"{files_base}{REPORT_NAME}", status_code=307)
    names = artifact_names(outputs.result(EXPLAIN_TASK_ID))
    rows = []
    for relative in sorted(served):
        url = escape(files_base + relative, quote=True)
        shown = names.get(prefix.uri + relative, relative)
        preview = f"<img alt='{escape(shown, quote=True)}' src='{url}'>" if content_type(relative) == "image/png" else ""
        rows.append(f"<h2><a href='{url}'>{escape(shown)}</a></h2>{preview}")
    return _page("Explanations (the report is not written yet)",
                 f"<p>Under <code>{escape(prefix.uri)}</code>; the <code>report</code> task has not run yet.</p>"
                 + "".join(rows))


def _stream(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(CHUNK_BYTES)
    finally:
        body.close()


def _client_error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


# ------------------------------------------------------------------------------------------------ the app
def create_app(source: RunSource | None = None) -> FastAPI:
    """The app, reading through ``source`` (default: Airflow's database and S3)."""
    app = FastAPI(title="sm-explain-ops explanation reports", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.source = source or RunSource()
    run_route = "/dags/{dag_id}/runs/{run_id}"
    guard = [Depends(authorized_run)]

    @app.exception_handler(HTTPException)
    async def _error(request: Request, error: HTTPException) -> Response:
        headers = getattr(error, "headers", None)
        if _wants_html(request) and error.status_code in (403, 404, 413, 502):
            page = _page({403: "Not allowed", 404: "Not found", 413: "Too large", 502: "S3 did not answer"}
                         [error.status_code], f"<p>{escape(str(error.detail))}</p>", error.status_code)
            return page
        return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=headers)

    @app.get(run_route + "/report", dependencies=guard, response_model=None)
    def run_report(request: Request, dag_id: str, run_id: str) -> Response:
        return _report_page(request, dag_id, run_id, "files/")

    @app.get(run_route + "/tasks/{task_id}/report", dependencies=guard, response_model=None)
    def task_report(request: Request, dag_id: str, run_id: str, task_id: str) -> Response:
        if task_id not in REPORT_TASK_IDS:
            return _page("No explanation report on this task",
                         f"<p>The task <code>{escape(task_id)}</code> has no explanation report: it is on the "
                         + " and ".join(f"<code>{escape(t)}</code>" for t in REPORT_TASK_IDS)
                         + " tasks of an sm-explain-ops pipeline run, and on the run's own page.</p>", 404)
        return _report_page(request, dag_id, run_id, "../../files/")

    @app.get(run_route + "/artifacts", dependencies=guard)
    def artifacts(request: Request, dag_id: str, run_id: str) -> dict[str, Any]:
        outputs = _run_outputs(request, dag_id, run_id)
        prefix, served = _explanations(outputs)
        names = artifact_names(outputs.result(EXPLAIN_TASK_ID))
        return {
            "explanations_uri": prefix.uri,
            "report": f"files/{REPORT_NAME}" if REPORT_NAME in served else None,
            "artifacts": [{"name": names.get(prefix.uri + relative, relative), "path": relative,
                           "url": f"files/{relative}", "content_type": content_type(relative)}
                          for relative in sorted(served)],
        }

    @app.get(run_route + "/files/{name:path}", dependencies=guard, response_model=None)
    def file(request: Request, dag_id: str, run_id: str, name: str) -> Response:
        outputs = _run_outputs(request, dag_id, run_id)
        prefix, served = _explanations(outputs)
        key = served.get(name)
        if key is None:
            raise HTTPException(404, f"{name!r} is not one of this run's explanations (under {prefix.uri})")
        task_id = REPORT_TASK_ID if name == REPORT_NAME else EXPLAIN_TASK_ID
        return _s3_response(request.app.state.source, outputs.aws_conn_id(task_id), prefix.bucket, key, name)

    @app.get(run_route + "/staged", dependencies=guard, response_model=None)
    def staged(request: Request, dag_id: str, run_id: str) -> Response:
        outputs = _run_outputs(request, dag_id, run_id)
        stage = outputs.result(STAGE_TASK_ID)
        try:
            prefix = staged_prefix(stage)
        except NoExplanations as error:
            raise HTTPException(404, str(error)) from None
        objects = _list(request.app.state.source, outputs.aws_conn_id(STAGE_TASK_ID), prefix)
        facts = [(key, stage.get(key)) for key in ("dataset_version", "source_sha256", "rows", "n_features",
                                                   "train_uri", "validation_uri", "features_uri") if key in stage]
        fact_rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in facts)
        object_rows = "".join(f"<tr><td><code>{escape(key[len(prefix.key):])}</code></td><td>{size:,}</td>"
                              f"<td>{escape(str(modified))}</td></tr>" for key, size, modified in objects)
        more = f"<p>Only the first {MAX_LISTED_OBJECTS:,} objects are listed.</p>" if len(objects) >= MAX_LISTED_OBJECTS else ""
        return _page("Staged data", f"<p>Under <code>{escape(prefix.uri)}</code></p><table>{fact_rows}</table>"
                     f"<h2>Objects</h2><table><tr><th>Key</th><th>Bytes</th><th>Last modified</th></tr>"
                     f"{object_rows}</table>{more}")

    return app


def _s3_response(source: RunSource, aws_conn_id: str, bucket: str, key: str, name: str) -> Response:
    """The object streamed in chunks with its type and length; 404 when S3 has none, 413 over the bound."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        answer = source.s3_client(aws_conn_id).get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if _client_error_code(error) in ("NoSuchKey", "NoSuchBucket", "404", "NotFound"):
            raise HTTPException(404, f"s3://{bucket}/{key} does not exist (any more)") from None
        raise HTTPException(502, f"the connection {aws_conn_id!r} cannot read s3://{bucket}/{key}: "
                                 f"{_client_error_code(error) or error}") from None
    except BotoCoreError as error:
        raise HTTPException(502, f"the connection {aws_conn_id!r} cannot reach S3: {error}") from None
    size = int(answer.get("ContentLength") or 0)
    if size > MAX_OBJECT_BYTES:
        answer["Body"].close()
        raise HTTPException(413, f"s3://{bucket}/{key} has {size:,} bytes, more than the {MAX_OBJECT_BYTES:,} "
                                 "this page serves: download it from S3")
    headers = {**response_headers(posixpath.basename(name)), "Content-Length": str(size)}
    return StreamingResponse(_stream(answer["Body"]), headers=headers, media_type=headers["Content-Type"])


def _list(source: RunSource, aws_conn_id: str, prefix: S3Prefix) -> list[tuple[str, int, Any]]:
    from botocore.exceptions import BotoCoreError, ClientError

    found: list[tuple[str, int, Any]] = []
    try:
        pages = source.s3_client(aws_conn_id).get_paginator("list_objects_v2").paginate(
            Bucket=prefix.bucket, Prefix=prefix.key, PaginationConfig={"MaxItems": MAX_LISTED_OBJECTS})
        for page in pages:
            found += [(item["Key"], int(item.get("Size", 0)), item.get("LastModified", ""))
                      for item in page.get("Contents", [])]
    except (ClientError, BotoCoreError) as error:
        raise HTTPException(502, f"the connection {aws_conn_id!r} cannot list {prefix.uri}: {error}") from None
    return found[:MAX_LISTED_OBJECTS]

