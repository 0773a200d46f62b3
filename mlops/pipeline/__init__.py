"""The pipeline: compile pipeline.yaml to dvc.yaml, run it through DVC, record every run."""
