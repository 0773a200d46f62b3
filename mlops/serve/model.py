"""One model version as the server holds it: verified, loaded and compiled (`load_model`), and
what the metrics need to know about it (`value_buckets`).

`mlops.serve.service` keeps the current version and switches between them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops.bundle import BundleError, load_bundle
from mlops.bundle.inputs import InputSpec
from mlops.bundle.predictor import Predictor
from mlops.deploy.target import DEPLOYMENT, read_deployment
from mlops.serve.metrics import LATENCY_BUCKETS


@dataclass
class LoadedModel:
    """One verified, loaded version, ready to predict."""

    name: str
    version: str
    commit: str | None
    path: Path
    loaded_at: float
    task: str
    spec: InputSpec
    predictor: Predictor
    key: tuple | None = None  # (link text, inode) of the target's `current` it was loaded from

    @property
    def numeric(self) -> bool:
        """Whether the model predicts values (a regressor) rather than classes."""
        return self.predictor.classes is None

    def describe(self) -> dict[str, Any]:
        """What `/version` shows about this model."""
        return {
            "name": self.name,
            "version": self.version,
            "commit": self.commit,
            "loaded_at": datetime.fromtimestamp(self.loaded_at, UTC).isoformat(timespec="seconds"),
            "path": str(self.path),
            "task": self.task,
            "classes": self.predictor.classes,
            "prediction_path": self.predictor.mode,
            "prediction_path_note": self.predictor.note,
            "features": [f.describe() for f in self.spec.features],
        }


def load_model(
    path: Path,
    range_margin: float = 0.0,
    key: tuple | None = None,
    trusted_types: Collection[str] = (),
    code_root: str | None = None,
) -> LoadedModel:
    """Verify every hash, check the model's types (allow-list + `trusted_types`), load the
    pipeline, compile and self-check it."""
    bundle = load_bundle(
        path,
        extra_files=(DEPLOYMENT,),
        trusted_types=trusted_types,
        code_root=Path(code_root) if code_root else None,
    )
    spec = InputSpec.from_schema(bundle.schema, range_margin)
    if not spec.features:
        raise BundleError(
            f"bundle {path} has no input schema (schema.json lists no features)",
            "Rebuild the bundle with `mlops run`: the train stage writes the schema.",
        )
    deployment = read_deployment(path) or {}
    meta = bundle.metadata
    return LoadedModel(
        name=deployment.get("name") or bundle.name,
        version=deployment.get("version") or meta.get("version") or "unversioned",
        commit=deployment.get("commit") or (meta.get("git") or {}).get("commit"),
        path=Path(path),
        loaded_at=time.time(),
        task=meta.get("task", "classification" if hasattr(bundle.model, "classes_") else ""),
        spec=spec,
        predictor=Predictor.load(bundle.model, spec),
        key=key,
    )


def value_buckets(path: Path) -> tuple[float, ...]:
    """Buckets for predicted values: the training target's histogram edges, when known."""
    try:
        meta = json.loads((path / "metadata.json").read_text())
        ref = json.loads((path / "reference.json").read_text())
        edges = ref["columns"][meta["target"]]["histogram"]["edges"]
        out = tuple(sorted({float(e) for e in edges}))
        return out or LATENCY_BUCKETS
    except (OSError, ValueError, KeyError, TypeError):
        return LATENCY_BUCKETS
