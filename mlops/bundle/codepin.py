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
import importlib
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlops.bundle.core import BundleError
from mlops.errors import UsageError

# type-name prefixes that never come from a project (their versions are recorded, not hashed)
_THIRD_PARTY = ("builtins", "collections", "numpy", "scipy", "sklearn", "lightgbm", "xgboost")


class CodeMismatchError(BundleError):
    """The project code a bundle was trained with differs from the installed code (exit 6)."""


def split_class_path(path: str) -> tuple[str, str]:
    """`"pkg.mod:Class"` or `"pkg.mod.Class"` -> `("pkg.mod", "Class")`."""
    module, sep, cls = path.partition(":")
    if not sep:
        module, _, cls = path.rpartition(".")
    if not module or not cls or not all(p.isidentifier() for p in [*module.split("."), cls]):
        raise UsageError(
            f"{path!r} is not a class path",
            "Name a class as `module:Class` or `module.Class`, e.g. features:Ratios or "
            "sklearn.linear_model.LogisticRegression.",
        )
    return module, cls


def module_files(module: str, root: Path) -> list[Path] | None:
    """The files importing `module` from `root` executes (parent `__init__.py`s, then the
    module), or None when `module` is not under `root`. Imports nothing."""
    parts = module.split(".")
    files: list[Path] = []
    here = Path(root)
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        pkg = here / part
        if (pkg / "__init__.py").is_file():
            files.append(pkg / "__init__.py")
            here = pkg
            continue
        if last and (here / f"{part}.py").is_file():
            files.append(here / f"{part}.py")
            return files
        return None
    return files


def is_project_module(module: str, root: Path) -> bool:
    """Whether `module` is the project's own code (its top level sits in `root`)."""
    return module_files(module, root) is not None


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def import_class(path: str, root: Path | None = None) -> type:
    """Import the class `path` names. A module of the project (under `root`) is imported from
    `root` explicitly, and refused if another module of that name shadows it."""
    module_name, cls_name = split_class_path(path)
    project = root is not None and is_project_module(module_name, root)
    if project:
        assert root is not None
        use_root(root)
    hint = (
        "Give a class path such as sklearn.ensemble.RandomForestClassifier, or a class of "
        "your project's own code as module:Class (the module in the repository root)."
    )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"{path!r} cannot be imported: {exc}", hint) from None
    if project:
        assert root is not None
        found = Path(getattr(module, "__file__", "") or "")
        if not _inside(found, root):
            raise UsageError(
                f"{module_name} is imported from {found}, not from the project in {root}",
                "Rename your module, or uninstall the package that shadows it.",
            )
    try:
        cls = getattr(module, cls_name)
    except AttributeError:
        msg = f"{path!r} cannot be imported: no {cls_name} in {module_name}"
        raise UsageError(msg, hint) from None
    if not isinstance(cls, type):
        raise UsageError(f"{path!r} is not a class", "Name a class, never a function.")
    return cls


def use_root(root: Path) -> None:
    """Put the project root first on `sys.path` (once), so its modules are the ones imported."""
    entry = str(Path(root).resolve())
    if entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(0, entry)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _combined(modules: dict[str, dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for name in sorted(modules):
        for rel, digest in sorted(modules[name]["files"].items()):
            h.update(f"{name}\0{rel}\0{digest}\n".encode())
    return h.hexdigest()


_PACKAGES: dict[tuple[str, ...], dict[str, list[str]]] = {}


def packages_distributions() -> dict[str, list[str]]:
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
    if problems:
        raise CodeMismatchError(
            f"bundle {bundle} needs project code that differs from the installed code: "
            + "; ".join(problems),
            "Serve or deploy this version from a checkout of the commit it was trained at "
            "(`mlops registry show` names it; the serving image installs the project at that "
            "commit), or train and register a new version with the current code.",
            details=problems,
        )
    if root is not None:
        use_root(root)
