"""One module per pipeline stage, named as the stage in dvc.yaml: what `stages/<name>.py` calls."""
