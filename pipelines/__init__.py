"""Kubeflow pipeline wiring (`newsrec_pipeline`) and its compile/run/submit CLI (`pipelines.cli`)."""
