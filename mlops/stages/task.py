"""Kept import path: the task rule lives in `mlops.config.task` (what `model.task: auto` means).

stages/train.py still imports it from here; new code imports `mlops.config.task`."""

from mlops.config.task import MAX_CLASSES_FOR_INT, infer_task

__all__ = ["MAX_CLASSES_FOR_INT", "infer_task"]
