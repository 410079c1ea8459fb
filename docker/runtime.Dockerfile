# The runtime image: staging, explanations and the report (the sm-explain-runtime distribution, include/) as a
# container, for SageMaker Processing jobs, the way SageMaker runs its own algorithms in containers. Its entry
# points are the runtime CLIs:
#   python -m sm_staging         --request R.json --result S.json
#   python -m sm_explain         --request R.json --result S.json
#   python -m sm_explain.report  --request R.json --result S.json
#   python -m sm_explain.map_job --request R.json --input DIR --partials DIR --resource-config FILE
#   python -m sm_explain.reduce  --request R.json --result S.json   (a split explanation's map and reduce)
# The image holds the runtime's pinned environment (include/runtime-requirements.txt) and the contracts, nothing
# else: no Airflow, no local endpoint, no test tools.
#   docker build -f docker/runtime.Dockerfile -t sm-explain-runtime:0.1.0 .
# Needs BuildKit (the default of Docker Engine 23+): the distributions' sources are bind-mounted into the step
# that installs them, so none is left in a layer.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE} AS runtime

# xgboost's wheels link OpenMP (libgomp), which slim images lack.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MPLBACKEND=Agg PIP_DISABLE_PIP_VERSION_CHECK=1

# The third-party pins in a layer of their own: a code change does not reinstall them.
COPY include/runtime-requirements.txt /tmp/runtime-requirements.txt
RUN pip install --no-cache-dir -r /tmp/runtime-requirements.txt && rm /tmp/runtime-requirements.txt

# The contracts and the runtime, from a writable copy (setuptools writes build/ and *.egg-info beside them);
# --no-deps: every dependency is pinned above. The import check fails the build, not the first job.
RUN --mount=type=bind,source=contracts,target=/mnt/sm-explain-src/contracts \
    --mount=type=bind,source=include,target=/mnt/sm-explain-src/include \
    cp -r /mnt/sm-explain-src /tmp/sm-explain-src \
    && pip install --no-cache-dir --no-deps /tmp/sm-explain-src/contracts /tmp/sm-explain-src/include \
    && rm -rf /tmp/sm-explain-src \
    && python -c "import sm_staging.__main__, sm_explain.__main__, sm_explain.report, sm_explain.map_job, sm_explain.reduce, smdebug, shap, xgboost"

# SageMaker Processing mounts inputs and outputs below /opt/ml/processing and runs the job's ContainerEntrypoint
# (e.g. ["python", "-m", "sm_explain"]); without one, the ContainerArguments go to `python -m`.
WORKDIR /opt/ml/processing
ENTRYPOINT ["python", "-m"]
CMD ["sm_explain", "--help"]
