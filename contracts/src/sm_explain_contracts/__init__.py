"""The rules both sides of sm-explain-ops must agree on, in one place: the Airflow provider (`sm_explain_ops`),
the runtime (`sm_staging`, `sm_explain`) and the local SageMaker endpoint (`sm_local`, including every built-in
image's algorithm process) import them from here.

Standard library only: it is installed into the Airflow environment (numpy 2, protobuf 5), the runtime
environment (numpy 1.26, protobuf 3.20) and put on the path of every image's environment, which share nothing
else.
"""

__version__ = "0.1.0"
