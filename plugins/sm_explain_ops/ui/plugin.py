"""The ``AirflowPlugin`` of sm-explain-ops, registered by the ``airflow.plugins`` entry point (root pyproject.toml).

Airflow 3.3 loads plugins from the plugins folder, from ``airflow.plugins`` entry points, and (only with
``[core] lazy_discover_providers = False``) from the providers' ``plugins`` info; the entry point works in every
configuration, and registering the plugin a second way would make Airflow report "already registered" as a plugin
import error, so the provider info does not list it. ``plugins/.airflowignore`` keeps the plugins-folder loader
(the local setups point ``[core] plugins_folder`` at ``plugins/``) from importing the package's modules a second
time as top-level files.

Every process that loads plugins (workers and the scheduler too) imports this module: it imports nothing but the
plugin base class, and builds the FastAPI app only when the api-server asks for ``fastapi_apps``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from airflow.providers.common.compat.sdk import AirflowPlugin

from sm_explain_ops.ui.paths import URL_PREFIX, root_path

PLUGIN_NAME = "sm_explain_ops"
TAB_NAME = "Explanation report"


def _root() -> str:
    from airflow.configuration import conf

    return root_path(conf.get("api", "base_url", fallback=""))


@cache
def _fastapi_app() -> Any:
    from sm_explain_ops.ui.app import create_app

    return create_app()


def report_views(root: str = "") -> list[dict[str, Any]]:
    """The report as a tab on the DAG run page and on every task instance page (Airflow 3.3 cannot limit a tab
    to some tasks; the page of any task but explain and report says where the report is)."""
    base = f"{root}{URL_PREFIX}/dags/{{DAG_ID}}/runs/{{RUN_ID}}"
    return [
        {"name": TAB_NAME, "href": f"{base}/report", "destination": "dag_run",
         "url_route": "sm-explain-run-report"},
        {"name": TAB_NAME, "href": f"{base}/tasks/{{TASK_ID}}/report", "destination": "task_instance",
         "url_route": "sm-explain-task-report"},
    ]


class SmExplainOpsPlugin(AirflowPlugin):
    """The explanation report inside Airflow: the api-server app and the tabs."""

    name = PLUGIN_NAME

    @property  # type: ignore[override]
    def fastapi_apps(self) -> list[dict[str, Any]]:
        return [{"app": _fastapi_app(), "url_prefix": URL_PREFIX, "name": "sm-explain-ops explanation reports"}]

    @property  # type: ignore[override]
    def external_views(self) -> list[dict[str, Any]]:
        return _external_views_cached()


@cache
def _external_views_cached() -> list[dict[str, Any]]:
    # One list object for the process: Airflow's UI plugin loader removes rejected views from it in place.
    return report_views(_root())
