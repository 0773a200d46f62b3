"""Code is pinned, never shipped: which project modules a bundle needs, and a hash of their source.

A model that holds the project's own classes (a transformer of `features.py`, an estimator of
`mymodel/estimators.py`) cannot be rebuilt without that code. The bundle never carries it (code
inside a bundle would undo the exact-type allow-list of `mlops.bundle.trust`); it records instead
`metadata.json` → `code`:

- `modules`: each project module the model's types come from, with the repository-relative path
  of every file importing it executes (the module and its parent packages' `__init__.py`) and
  each file's sha256;
- `hash`: one sha256 over all of them;
- `packages`: the installed version of every distribution the model's types come from
  (scikit-learn, numpy, lightgbm...), for the record.

Before a bundle with pinned code is loaded (`mlops serve`, deploy's smoke test, every loader
going through `mlops.bundle.load_bundle`), the installed code is located **without importing
it** (in the project root the caller names, else on `sys.path`) and hashed; any difference is
refused with exit 6 naming each file. Only then is the project root put on `sys.path`, so the
module that gets imported is the one whose hash was checked.

A *project module* is one whose top-level package or module sits in the project root (the
directory holding `pipeline.yaml`; DVC runs stages from there). Classes are named `module:Class`
or `module.Class` in params.yaml.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlops.bundle.core import BundleError

# the project's modules are found and imported in config (`mlops check` needs them too); the
# names stay importable from here
from mlops.config.modules import import_class as import_class
from mlops.config.modules import is_project_module as is_project_module
from mlops.config.modules import module_files, use_root
from mlops.config.modules import split_class_path as split_class_path

# type-name prefixes that never come from a project (their versions are recorded, not hashed)
_THIRD_PARTY = (
    "builtins",
    "collections",
    "numpy",
    "scipy",
    "sklearn",
    "lightgbm",
    "xgboost",
    "mlops",  # mlops.bundle.labels.EncodedLabels (XGBoost's labels)
)


class CodeMismatchError(BundleError):
    """The project code a bundle was trained with differs from the installed code (exit 6).

    A server asked to switch to such a version keeps its version: only a process started with
    that code (in a pod: the image built at the version's commit) can serve it."""

    restart_required = True


class StaleCodeError(CodeMismatchError):
    """The installed code matches the bundle, but this process already imported other code of
    the same modules (a server hot-swapping to a version trained with new code): only a new
    process can load it (exit 6)."""


# module -> {relpath: sha256} of the files this process imported it from, once verified
_IMPORTED: dict[str, dict[str, str]] = {}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _combined(modules: dict[str, dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for name in sorted(modules):
        for rel, digest in sorted(modules[name]["files"].items()):
            h.update(f"{name}\0{rel}\0{digest}\n".encode())
    return h.hexdigest()


_PACKAGES: dict[tuple[str, ...], Mapping[str, list[str]]] = {}


def packages_distributions() -> Mapping[str, list[str]]:
    """`importlib.metadata.packages_distributions()`, remembered per import path.

    It reads every installed distribution's file list (about a second); the warm runner
    (`mlops.runner`) calls this before it forks its stages. Entry 0 of `sys.path` (the stage's
    working directory, which differs between the runner and its stages) is left out of the key
    only while it holds no distribution, so the answer is always the uncached one.
    """
    from importlib import metadata

    key = tuple(sys.path[1:])
    if sys.path and any(True for _ in metadata.distributions(path=sys.path[:1])):
        return metadata.packages_distributions()
    if key not in _PACKAGES:
        _PACKAGES[key] = metadata.packages_distributions()
    return _PACKAGES[key]


def remember_packages_distributions(mapping: Mapping[str, list[str]]) -> None:
    """Take `mapping` as `packages_distributions()`'s answer for this import path: what
    `importlib.metadata.packages_distributions()` returned in a process with the very same
    `sys.path` (the warm runner computes it in a helper process while it imports)."""
    _PACKAGES[tuple(sys.path[1:])] = {k: list(v) for k, v in mapping.items()}


def _distribution_versions(top_levels: Iterable[str]) -> dict[str, str]:
    from importlib import metadata

    mapping = packages_distributions()
    out = {}
    for top in sorted(set(top_levels)):
        for dist in mapping.get(top, []):
            try:
                out[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:  # pragma: no cover - a broken install
                continue
    return out


def pin(type_names: Iterable[str], root: Path) -> dict[str, Any]:
    """The `code` record of a model whose skops file names `type_names`, the project at `root`."""
    root = Path(root)
    modules: dict[str, dict[str, Any]] = {}
    tops = set()
    for name in type_names:
        module = name.rpartition(".")[0]
        top = module.split(".")[0]
        if top in ("builtins", "") or not module:
            continue
        files = None if top in _THIRD_PARTY else module_files(module, root)
        if files is None:
            tops.add(top)
            continue
        modules[module] = {
            "files": {f.relative_to(root).as_posix(): _sha256(f) for f in files},
        }
    return {
        "modules": modules,
        "hash": _combined(modules) if modules else None,
        "packages": _distribution_versions(tops),
    }


def _locate(module: str, root: Path | None) -> tuple[Path, list[Path]] | None:
    """(search directory, files) of the installed `module`: in `root` first, then `sys.path`."""
    places = ([Path(root)] if root is not None else []) + [
        Path(p) if p else Path.cwd() for p in sys.path
    ]
    for place in places:
        if not place.is_dir():
            continue
        files = module_files(module, place)
        if files is not None:
            return place, files
    return None


def verify_code(code: dict[str, Any] | None, root: Path | None, bundle: Path) -> None:
    """Refuse (exit 6) when a pinned module's installed source differs from what the bundle
    was trained with; then make the project importable from `root`."""
    if not isinstance(code, dict) or not code.get("modules"):
        return
    modules = code["modules"]
    if not isinstance(modules, dict):
        raise BundleError(f"bundle {bundle}: metadata.json `code.modules` is not a mapping")
    problems = []
    for module, entry in sorted(modules.items()):
        recorded = (entry or {}).get("files") if isinstance(entry, dict) else None
        if not all(part.isidentifier() for part in str(module).split(".")):
            problems.append(f"{str(module)[:80]!r}: not a module name")
            continue
        if not isinstance(recorded, dict):
            problems.append(f"{module}: no file hashes recorded")
            continue
        found = _locate(str(module), root)
        if found is None:
            problems.append(f"{module}: not installed (trained with {', '.join(sorted(recorded))})")
            continue
        place, files = found
        installed = {f.relative_to(place).as_posix(): f for f in files}
        for rel in sorted(set(recorded) | set(installed)):
            if rel not in installed:
                problems.append(f"{rel}: recorded in the bundle, not part of installed {module}")
            elif rel not in recorded:
                problems.append(f"{installed[rel]}: part of installed {module}, not recorded")
            else:
                digest = _sha256(installed[rel])
                if digest != recorded[rel]:
                    problems.append(
                        f"{installed[rel]}: sha256 {digest[:12]}… but the model was trained "
                        f"with {recorded[rel][:12]}…"
                    )
    if not problems:
        _check_imported(modules, bundle)
    if problems:
        raise CodeMismatchError(
            f"bundle {bundle} needs project code that differs from the installed code: "
            + "; ".join(problems),
            "Serve or deploy this version from a checkout of the commit it was trained at "
            "(`mlops registry show NAME` names it; the serving image installs the project at that "
            "commit), or train and register a new version with the current code.",
            details=problems,
        )
    if root is not None:
        use_root(root)


def _check_imported(modules: dict[str, Any], bundle: Path) -> None:
    """Refuse a bundle whose pinned modules this process already imported from other source
    (`StaleCodeError`); remember what the modules about to be imported were verified as.

    Python keeps an imported module for the life of the process: a server that loaded
    `features.py` at one commit and is then asked to switch to a version trained with another
    (the checkout moved on, the files on disk now match) would otherwise rebuild the new model
    with the old classes. Reloading modules in place is not safe (instances of the old classes
    live on in the served model), so the switch is refused and the process says so."""
    stale = []
    for module, entry in sorted(modules.items()):
        recorded = dict(entry["files"])
        held = _IMPORTED.get(str(module))
        if str(module) not in sys.modules:
            _IMPORTED[str(module)] = recorded  # imported next, from the files just verified
        elif held is not None and held != recorded:
            changed = sorted(r for r in set(held) | set(recorded) if held.get(r) != recorded.get(r))
            stale += [
                f"{rel}: this process imported {(held.get(rel) or 'nothing')[:12]}…, the model "
                f"was trained with {(recorded.get(rel) or 'nothing')[:12]}…"
                for rel in changed
            ]
    if stale:
        raise StaleCodeError(
            f"bundle {bundle} needs project code other than the code this process imported: "
            + "; ".join(stale),
            "Restart the server (in Kubernetes: roll out the image built at the version's "
            "commit); the version served now keeps serving until then.",
            details=stale,
        )
