"""See the package docstring of sm_explain_ops."""
