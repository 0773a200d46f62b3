"""`mlops init`: a project that runs out of the box (git, DVC, a local remote, real sample data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from mlops.adapters import dvc, git
from mlops.config import load_project
from mlops.config.yamlfile import atomic_write_bytes, atomic_write_text
from mlops.errors import UsageError
from mlops.pipeline.compile import write_dvc_yaml

TEMPLATES = {
    "pipeline.yaml": "pipeline.yaml",
    "params.yaml": "params.yaml",
    ".gitlab-ci.yml": "gitlab-ci.yml",
}
SAMPLE = "data/source/penguins.csv"
SCHEMA = "data/schema.yaml"


@dataclass
class InitResult:
    root: Path
    written: list[str] = field(default_factory=list)
    git_initialised: bool = False
    dvc_initialised: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "written": self.written,
            "git_initialised": self.git_initialised,
            "dvc_initialised": self.dvc_initialised,
        }


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


def init_project(dest: Path | str, force: bool = False) -> InitResult:
    """Scaffold a project in `dest`; refuse to overwrite existing files unless `force`."""
    import io

    import pandas as pd

    from mlops.data.schema import infer_schema, write_schema

    root = Path(dest).resolve()
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} exists and is not a directory")
    planned = [*TEMPLATES, SAMPLE, SCHEMA]
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
    log = root / ".mlops" / "logs" / "init.log"
    for rel, name in TEMPLATES.items():
        atomic_write_text(root / rel, template(name))
        result.written.append(rel)
    data = sample_data()
    atomic_write_bytes(root / SAMPLE, data)
    result.written.append(SAMPLE)
    write_schema(root / SCHEMA, infer_schema(pd.read_csv(io.BytesIO(data))))
    result.written.append(SCHEMA)
    if _merge_gitignore(root / ".gitignore"):
        result.written.append(".gitignore")
    if not (root / ".dvc").is_dir():
        dvc.init(root, log)
        result.dvc_initialised = True
    project = load_project(root)
    remote = project.pipeline.remote
    dvc.configure_remote(root, remote.name, remote.url, log, remote.options)
    if write_dvc_yaml(project):
        result.written.append("dvc.yaml")
    return result
