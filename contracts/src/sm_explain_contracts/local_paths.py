"""Whether this deployment lets tasks and the runtime read local files named in params and XComs.

A local path in a DAG param (`source_uri`) or an upstream XCom (the explanation's inputs) is read on the worker
with the worker's rights: a user who may only trigger runs could make a task read any file there. So local paths
are off unless the deployment sets `SM_EXPLAIN_ALLOW_LOCAL_SOURCES=1` (the local stack, `make demo` and the tests
do; a production deployment never needs it: its data is in S3).
"""

from __future__ import annotations

import os

ALLOW_LOCAL_SOURCES_ENV = "SM_EXPLAIN_ALLOW_LOCAL_SOURCES"


def local_paths_allowed() -> bool:
    return os.environ.get(ALLOW_LOCAL_SOURCES_ENV, "").strip() == "1"
