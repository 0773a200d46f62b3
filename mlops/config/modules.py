"""Where the project's own modules live: the files importing one executes, found without importing
it (`mlops check` lists them as the train stage's dependencies; the bundle's code pinning
(`mlops.bundle.codepin`) hashes them)."""

from __future__ import annotations

from pathlib import Path


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
