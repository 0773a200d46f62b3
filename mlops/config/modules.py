"""The project's own modules: the files importing one executes, found without importing it
(`mlops check` lists them as the train stage's dependencies; the bundle's code pinning,
`mlops.bundle.codepin`, hashes them), and a class imported by its path from the project root
(`mlops check` imports the classes pipeline.yaml names; the train stage builds them).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from mlops.errors import UsageError


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
