"""Training pipelines: a YAML spec → data → CV + Optuna search → final fit → registered version."""
