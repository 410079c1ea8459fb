"""The Airflow UI plugin of sm-explain-ops: each run's explanation report and its artifacts, served from S3 by the
api-server behind Airflow's own login, shown as a tab on the DAG run and task instance pages.

- :mod:`sm_explain_ops.ui.paths`: the plugin's URLs and which S3 keys a run may show (standard library only: the
  extra links, computed on the workers, import it);
- :mod:`sm_explain_ops.ui.run_outputs`: a run's explanations prefix and artifacts, from its XComs (api-server);
- :mod:`sm_explain_ops.ui.app`: the FastAPI app (routes, auth, streaming);
- :mod:`sm_explain_ops.ui.plugin`: the ``AirflowPlugin`` (entry point ``airflow.plugins``).
"""
