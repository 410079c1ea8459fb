"""A local SageMaker-compatible training endpoint: really trains built-in XGBoost with Debugger and
really evaluates Debugger rules, so the DAG runs offline on the production code path (runtime env)."""
