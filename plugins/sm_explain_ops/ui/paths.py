"""The plugin's URLs and which S3 objects a run may show: pure functions, standard library and the contracts only.

The extra links are computed on the workers (Airflow 3 stores each link's URL in XCom when the task ends) and the
pages are served by the api-server: both build their URLs here, so they cannot drift apart.

What a run may show is decided from the run's own XComs, never from the URL: the explanations prefix is the
directory of the ``report`` task's ``report_uri`` and of the ``explain`` task's ``manifest.json`` (the two must
agree when both exist), and only the report and the manifest's artifacts below that prefix are served, each under
its key relative to the prefix. Any other name, a ``..`` or an encoded one included, is simply not in that list.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from sm_explain_contracts.s3_uris import S3Location, S3UriError, parse_s3_uri
from sm_explain_contracts.safe_keys import UnsafeKeyError, relative_key_path

#: Where the FastAPI app is mounted on the api-server (not one of Airflow's reserved prefixes).
URL_PREFIX = "/sm-explain"
#: The pipeline's task ids (sm_explain_ops.pipeline.build_explainability_pipeline) whose XComs locate a run's data.
STAGE_TASK_ID = "stage_dataset"
EXPLAIN_TASK_ID = "explain"
REPORT_TASK_ID = "report"
#: The task instance pages the report tab belongs to.
REPORT_TASK_IDS = (EXPLAIN_TASK_ID, REPORT_TASK_ID)
REPORT_NAME = "report.html"
MANIFEST_NAME = "manifest.json"
#: The last segment of every explanations prefix (``<version root>/<job>/explanations/``, start_training).
EXPLANATIONS_DIR = "explanations"
#: The largest object the app streams (a report embeds every figure: a few MiB).
MAX_OBJECT_BYTES = 128 * 1024 * 1024
#: The most artifacts one run may list, and the most staged objects one listing shows.
MAX_ARTIFACTS = 2_000
MAX_LISTED_OBJECTS = 2_000

#: Content type by file extension; anything else is a download (application/octet-stream).
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".parquet": "application/vnd.apache.parquet",
}
#: Types a browser shows inline; every other type is sent as an attachment.
INLINE_TYPES = frozenset({"text/html", "image/png", "image/jpeg", "image/gif", "image/svg+xml", "text/csv",
                          "application/json", "text/plain"})
#: Documents that can run script: served in a sandbox of their own origin, so neither a report nor an object
#: someone wrote into the prefix can act as the logged-in user on the Airflow origin.
SANDBOXED_TYPES = frozenset({"text/html", "image/svg+xml"})
SANDBOX_POLICY = "sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox allow-downloads"


class NoExplanations(LookupError):
    """The run has no explanations the plugin can show; the message says why (it becomes the 404's detail)."""


#: A "directory" of one bucket: the contracts' bucket-and-key location whose ``key`` is empty or ends with '/'.
S3Prefix = S3Location


def root_path(base_url: str | None) -> str:
    """The path part of ``[api] base_url`` without its trailing '/' ('' at the root): the plugin's URLs are
    relative to the api-server's origin, so they open in the same tab whatever host name the user typed."""
    return urlsplit(base_url or "").path.rstrip("/")


def run_path(dag_id: str, run_id: str, *, root: str = "") -> str:
    return f"{root}{URL_PREFIX}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def report_path(dag_id: str, run_id: str, *, root: str = "") -> str:
    """The run's report page: a redirect to the report, or the artifacts while the report task has not run."""
    return f"{run_path(dag_id, run_id, root=root)}/report"


def file_path(dag_id: str, run_id: str, name: str, *, root: str = "") -> str:
    """One object of the run's explanations, by its key relative to the explanations prefix."""
    return f"{run_path(dag_id, run_id, root=root)}/files/{quote(name, safe='/')}"


def staged_path(dag_id: str, run_id: str, *, root: str = "") -> str:
    """The listing of the data the run staged."""
    return f"{run_path(dag_id, run_id, root=root)}/staged"


def _directory_of(uri: object, what: str) -> S3Prefix:
    try:
        location = parse_s3_uri(uri, what, require_key=True)
    except S3UriError as error:
        raise NoExplanations(str(error)) from None
    directory = posixpath.dirname(location.key)
    if not directory:
        raise NoExplanations(f"{what} {uri!r} lies at the root of its bucket")
    return S3Prefix(location.bucket, directory + "/")


def explanations_prefix(report: object, manifest: object) -> S3Prefix:
    """The run's explanations prefix from the XComs of its ``report`` task (``{"report_uri": ...}``) and its
    ``explain`` task (the manifest), either of which may be missing (None). Both present must name one prefix, and
    it must end in ``/explanations/``, the layout start_training gives: a prefix is never widened to a bucket."""
    found: list[tuple[str, S3Prefix]] = []
    if report is not None:
        uri = report.get("report_uri") if isinstance(report, Mapping) else None
        if not isinstance(uri, str) or posixpath.basename(uri) != REPORT_NAME:
            raise NoExplanations(f"the report task's XCom names no {REPORT_NAME}")
        found.append(("report", _directory_of(uri, "report_uri")))
    if manifest is not None:
        uri = _artifacts(manifest).get(MANIFEST_NAME)
        if not isinstance(uri, str):
            raise NoExplanations(f"the explain task's manifest names no {MANIFEST_NAME}")
        found.append(("explain", _directory_of(uri, MANIFEST_NAME)))
    if not found:
        raise NoExplanations("this run has no explanations yet (its explain and report tasks have no result)")
    prefixes = {prefix for _, prefix in found}
    if len(prefixes) > 1:
        raise NoExplanations("the report and the explanations of this run lie under different prefixes: "
                             + ", ".join(f"{task} {prefix.uri}" for task, prefix in found))
    [prefix] = prefixes
    if posixpath.basename(prefix.key.rstrip("/")) != EXPLANATIONS_DIR:
        raise NoExplanations(f"{prefix.uri} is not an explanations prefix (<version>/<job>/{EXPLANATIONS_DIR}/)")
    return prefix


def _artifacts(manifest: object) -> Mapping[str, Any]:
    artifacts = manifest.get("artifacts") if isinstance(manifest, Mapping) else None
    return artifacts if isinstance(artifacts, Mapping) else {}


def served_objects(prefix: S3Prefix, report: object, manifest: object) -> dict[str, str]:
    """``{name relative to the prefix: S3 key}`` of everything the run may show: the report and every manifest
    artifact whose URI lies below the prefix as a plain relative path (no '..', '.', empty segment, NUL or
    backslash). Anything else the XComs name is left out, never served."""
    uris = [report.get("report_uri")] if isinstance(report, Mapping) else []
    uris += list(_artifacts(manifest).values())
    served: dict[str, str] = {}
    for uri in uris:
        if len(served) >= MAX_ARTIFACTS:
            break
        try:
            location = parse_s3_uri(uri, "artifact", require_key=True)
            if location.bucket != prefix.bucket:
                continue
            served[relative_key_path(location.key, prefix.key)] = location.key
        except (S3UriError, UnsafeKeyError):
            continue
    return served


def artifact_names(manifest: object) -> dict[str, str]:
    """``{S3 URI: the manifest's name for it}``, for listing pages."""
    return {uri: str(name) for name, uri in _artifacts(manifest).items() if isinstance(uri, str)}


def staged_prefix(stage: object) -> S3Prefix:
    """The directory the run's data was staged into, from the ``stage_dataset`` XCom (``features_uri`` lies at
    its top: ``<version>/data/<source sha256>/features.json``)."""
    uri = stage.get("features_uri") if isinstance(stage, Mapping) else None
    if not isinstance(uri, str):
        raise NoExplanations("this run has staged no data yet (stage_dataset has no result)")
    return _directory_of(uri, "features_uri")


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(posixpath.splitext(name)[1].lower(), "application/octet-stream")


def response_headers(name: str) -> dict[str, str]:
    """Headers of one served object: its type, never sniffed; HTML and SVG sandboxed; unknown types downloaded;
    cached by the browser only, and revalidated (a rerun rewrites a run's objects)."""
    media_type = content_type(name)
    base_type = media_type.split(";", 1)[0]
    headers = {"Content-Type": media_type, "X-Content-Type-Options": "nosniff",
               "Cache-Control": "private, no-cache", "Referrer-Policy": "same-origin"}
    if base_type in SANDBOXED_TYPES:
        headers["Content-Security-Policy"] = SANDBOX_POLICY
    filename = quote(posixpath.basename(name), safe="")
    disposition = "inline" if base_type in INLINE_TYPES else "attachment"
    headers["Content-Disposition"] = f"{disposition}; filename*=UTF-8''{filename}"
    return headers
