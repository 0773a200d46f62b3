"""The project's own model code for the serving image, exported from a checkout at one commit.

`Dockerfile.serve` runs, in a build stage whose context is the project's checkout at
`PROJECT_COMMIT` (CI's `$CI_COMMIT_SHA`):

    python -m mlops.bundle.imagecode /tmp/checkout /opt/project --commit "$PROJECT_COMMIT"

and copies `/opt/project` into the final image, which sets `MLOPS_PROJECT_DIR=/opt/project`.
What is exported is what `mlops.bundle.codepin` hashes, laid out the same way (paths relative to
the project root), so a bundle trained at that commit finds its pinned files byte for byte:

- `pipeline.yaml` (the server reads `model.trusted_types` from it);
- every top-level module or package of the project that `model.trusted_types` names (a
  package is copied whole, without `__pycache__`);
- every top-level module or package of the project those files import (followed through the
  source with `ast`, nothing is imported or run), so a `features.py` using a `helpers.py`
  still imports in the image;
- `PROJECT_CODE.json`: the commit, the exported modules and their files' sha256.

Nothing else of the checkout (data, models, tests, CI files) enters the image.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from mlops.bundle.codepin import is_project_module
from mlops.errors import UsageError

PIPELINE = "pipeline.yaml"
MANIFEST = "PROJECT_CODE.json"


def _top_level_path(top: str, src: Path) -> Path | None:
    """The file or package directory of the project's top-level module `top`, if any."""
    if (src / top / "__init__.py").is_file():
        return src / top
    if (src / f"{top}.py").is_file():
        return src / f"{top}.py"
    return None


def _sources(path: Path) -> list[Path]:
    """The Python files of a module file or a package directory."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)


def _imported_tops(path: Path) -> set[str]:
    """Top-level module names `path`'s source imports (absolute imports only)."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError):
        return set()  # the server refuses a bundle whose module does not import; not ours here
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def project_modules(src: Path, trusted_types: list[str]) -> list[str]:
    """The top-level project modules the serving image needs: those `trusted_types` name, and
    the project modules they import, transitively."""
    todo = sorted({name.split(".")[0] for name in trusted_types})
    found: set[str] = set()
    while todo:
        top = todo.pop()
        if top in found or not top.isidentifier() or not is_project_module(top, src):
            continue
        path = _top_level_path(top, src)
        if path is None:
            continue
        found.add(top)
        for file in _sources(path):
            todo.extend(sorted(_imported_tops(file) - found))
    return sorted(found)


def export(src: Path | str, dest: Path | str, commit: str | None = None) -> dict[str, Any]:
    """Copy the project code of the checkout `src` the serving image needs into `dest` (see
    the module docstring); return the manifest written beside it."""
    from mlops.config.check import load_pipeline

    src, dest = Path(src).resolve(), Path(dest)
    trusted = list(load_pipeline(src).model.trusted_types)  # a ConfigError names the line
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / PIPELINE, dest / PIPELINE)
    files: dict[str, str] = {}
    modules = project_modules(src, trusted)
    for top in modules:
        path = _top_level_path(top, src)
        assert path is not None
        for file in [path, *(path.rglob("*") if path.is_dir() else [])]:
            if file.is_symlink() and not file.resolve().is_relative_to(src):
                raise UsageError(
                    f"{file.relative_to(src)} links outside the checkout ({file.resolve()})",
                    "Keep the project's own code inside the repository: the serving image "
                    "takes nothing from outside its build context.",
                )
        if path.is_dir():
            shutil.copytree(
                path, dest / top, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True
            )
        else:
            shutil.copyfile(path, dest / path.name)
        for file in _sources(path):
            rel = file.relative_to(src).as_posix()
            files[rel] = hashlib.sha256(file.read_bytes()).hexdigest()
    manifest = {"commit": commit or None, "modules": modules, "files": files}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    """`python -m mlops.bundle.imagecode SRC DEST [--commit SHA]` (run by Dockerfile.serve)."""
    parser = argparse.ArgumentParser(
        prog="python -m mlops.bundle.imagecode",
        description="Export the project's own model code (the modules pipeline.yaml's "
        "model.trusted_types name, what they import of the project, and pipeline.yaml) from a "
        "checkout into the serving image's project directory.",
        epilog="example: python -m mlops.bundle.imagecode /tmp/checkout /opt/project "
        '--commit "$CI_COMMIT_SHA"',
    )
    parser.add_argument("src", help="the project's checkout (the commit the image serves)")
    parser.add_argument("dest", help="where the image keeps the project code (/opt/project)")
    parser.add_argument("--commit", default="", help="the checkout's commit, for the record")
    args = parser.parse_args(argv)
    from mlops.errors import MlopsError

    try:
        manifest = export(args.src, args.dest, args.commit)
    except MlopsError as exc:
        print(f"error: {exc.message}\nhint: {exc.hint}", file=sys.stderr)
        return int(exc.exit_code)
    names = ", ".join(manifest["modules"]) or "none (no project types in model.trusted_types)"
    print(f"project code at {args.commit or 'the checkout'}: {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
