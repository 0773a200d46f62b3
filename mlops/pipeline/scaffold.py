"""`mlops init`: a project that runs out of the box (git, DVC, a local remote, real sample data)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from mlops.adapters import dvc, git
from mlops.config import load_project
from mlops.config.yamlfile import atomic_write_bytes, atomic_write_text
from mlops.errors import UsageError
from mlops.pipeline import gitrecords
from mlops.pipeline.compile import write_dvc_yaml

TEMPLATES = {
    "pipeline.yaml": "pipeline.yaml",
    "params.yaml": "params.yaml",
    ".gitlab-ci.yml": "gitlab-ci.yml",
    "Dockerfile.serve": "Dockerfile.serve",  # the serving image for Kubernetes (mlops only)
    "tests/test_model.py": "tests/test_model.py",  # the CI test job runs it (mlops.testing)
}
SAMPLE = "data/source/penguins.csv"
SCHEMA = "data/schema.yaml"


@dataclass
class InitResult:
    root: Path
    written: list[str] = field(default_factory=list)
    git_initialised: bool = False
    dvc_initialised: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "written": self.written,
            "git_initialised": self.git_initialised,
            "dvc_initialised": self.dvc_initialised,
            "notes": self.notes,
        }


PIP_SPEC_PLACEHOLDER = "__MLOPS_PIP_SPEC__"


def pip_spec() -> str:
    """How a CI runner installs this same mlops: from where pip installed it (PEP 610).

    A git checkout or an archive URL is reproducible on a runner; a local directory is not, so
    the spec is then left empty and the CI job says to set it. (The name `mlops` alone on PyPI is
    another project: never write a bare name.)
    """
    from importlib.metadata import distributions

    # a source tree's own `mlops.egg-info` can come first on sys.path: prefer the installed
    # record that says where it came from
    found = list(distributions(name="mlops"))
    if not found:
        return ""
    dist = next((d for d in found if d.read_text("direct_url.json")), found[0])
    raw = dist.read_text("direct_url.json")
    return spec_from_direct_url(json.loads(raw) if raw else None, dist.version)


def spec_from_direct_url(info: dict | None, version: str) -> str:
    """The pip requirement for a PEP 610 `direct_url.json` (None: installed from an index)."""
    if info is None:  # from a package index (a private one: see `pip_spec`)
        return f"mlops[serve]=={version}"
    url = info.get("url", "")
    vcs = info.get("vcs_info")
    if vcs and not url.startswith("file:"):
        return f"mlops[serve]@{vcs['vcs']}+{url}@{vcs.get('commit_id', '')}".rstrip("@")
    if "archive_info" in info and not url.startswith("file:"):
        return f"mlops[serve]@{url}"
    return ""


def template(name: str) -> str:
    return resources.files("mlops.templates").joinpath(name).read_text(encoding="utf-8")


def sample_data() -> bytes:
    """The Palmer Penguins CSV (344 rows) that the palmerpenguins package ships."""
    try:
        import palmerpenguins
    except ImportError:
        raise UsageError(
            "the sample data needs the palmerpenguins package", "pip install palmerpenguins"
        ) from None
    return resources.files(palmerpenguins).joinpath("data/penguins.csv").read_bytes()


def _merge_gitignore(path: Path) -> bool:
    lines = template("gitignore").splitlines()
    existing = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    missing = [ln for ln in lines if ln and ln not in existing]
    if not missing:
        return False
    text = "\n".join(existing + ([""] if existing else []) + missing) + "\n"
    atomic_write_text(path, text)
    return True


PIP_SPEC_NOTE = (
    "mlops was installed from a local directory, which a CI runner cannot reach: set "
    "MLOPS_PIP_SPEC in .gitlab-ci.yml (or as a CI/CD variable) to where it installs from, "
    "e.g. mlops[serve]@git+https://gitlab.example.com/tools/mlops.git@v0.1.0"
)


def start_project(root: Path, planned: list[str], force: bool) -> InitResult:
    """The directory made ready for a new project's files: refuse (nothing changed) when any of
    `planned` exists unless `force`; a git repository of its own, fetching run records."""
    clashes = [p for p in planned if (root / p).exists()]
    if clashes and not force:
        raise UsageError(
            f"{root} already has {', '.join(clashes)}; nothing was changed",
            "Use `mlops init --force` to overwrite them, or choose an empty directory.",
        )
    root.mkdir(parents=True, exist_ok=True)
    result = InitResult(root)
    top = git.toplevel(root)
    if top is None or top.resolve() != root:
        git.init(root)
        result.git_initialised = True
    gitrecords.ensure_refspec(root)  # `git fetch` brings the run records of CI and teammates
    return result


def finish_project(root: Path, result: InitResult) -> None:
    """After the project's files are written: .gitignore, DVC and its remote, dvc.yaml."""
    if _merge_gitignore(root / ".gitignore"):
        result.written.append(".gitignore")
    log = root / ".mlops" / "logs" / "init.log"
    if not (root / ".dvc").is_dir():
        dvc.init(root, log)
        result.dvc_initialised = True
    project = load_project(root)
    remote = project.pipeline.remote
    dvc.configure_remote(root, remote.name, remote.url, log, remote.options)
    if write_dvc_yaml(project):
        result.written.append("dvc.yaml")


def init_project(dest: Path | str, force: bool = False) -> InitResult:
    """Scaffold a project in `dest`; refuse to overwrite existing files unless `force`."""
    import io

    import pandas as pd

    from mlops.data.schema import infer_schema, write_schema

    root = Path(dest).resolve()
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} exists and is not a directory")
    result = start_project(root, [*TEMPLATES, SAMPLE, SCHEMA], force)
    spec = pip_spec()
    for rel, name in TEMPLATES.items():
        atomic_write_text(root / rel, template(name).replace(PIP_SPEC_PLACEHOLDER, spec))
        result.written.append(rel)
    if not spec:
        result.notes.append(PIP_SPEC_NOTE)
    data = sample_data()
    atomic_write_bytes(root / SAMPLE, data)
    result.written.append(SAMPLE)
    write_schema(root / SCHEMA, infer_schema(pd.read_csv(io.BytesIO(data))))
    result.written.append(SCHEMA)
    finish_project(root, result)
    return result
