"""A version's identity: one hash of what is served, and of nothing else.

A bundle's `metadata.json` also carries the evaluation (metrics, gate verdict, the baselines it was
compared with, slices): facts *about* the model that change when a baseline or a report moves. Two
bundles that serve the same predictions from the same inputs are the same version, so the identity
hashes only:

- the fitted pipeline (`model.skops`: preprocessing and estimator, its deterministic bytes),
- the input schema (`schema.json`: what serving accepts),
- the model's declaration (name, task, target, features in order, classes, estimator class),
- the params (`train`, with the seed, and `split`, which decides the training rows),
- the hashes of the data it was trained from (and the test split cut with it).

Registration records it in the tag message (`identity: <sha256>`); `mlops register` compares it
with the latest version's and registers nothing when they are equal.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

IDENTITY_FORMAT = 1
SERVED_FILES = ("model.skops", "schema.json")
DECLARATION = ("name", "task", "target", "features", "classes", "estimator")


class IdentityError(ValueError):
    """The metadata lacks what identifies a version (a bundle too old or altered)."""


def identity_content(meta: dict[str, Any]) -> dict[str, Any]:
    """The parts of a bundle's metadata that identify it (see the module's docstring)."""
    files = meta.get("files")
    if not isinstance(files, dict) or not all(isinstance(files.get(f), str) for f in SERVED_FILES):
        raise IdentityError(f"metadata.json records no sha256 of {' and '.join(SERVED_FILES)}")
    return {
        "identity_format": IDENTITY_FORMAT,
        "files": {f: files[f] for f in SERVED_FILES},
        **{k: meta.get(k) for k in DECLARATION},
        "params": meta.get("params") or {},
        "data": meta.get("data") or {},
    }


def version_identity(meta: dict[str, Any]) -> str:
    """sha256 (hex) of `identity_content(meta)` in canonical JSON."""
    text = json.dumps(
        identity_content(meta), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(text.encode()).hexdigest()
