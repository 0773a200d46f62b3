"""Where each environment deploys, as the running machine sees it: pipeline.yaml's `target:`,
unless an environment variable overrides it.

A CI job on a container runner cannot deploy into a local directory (the container and the
folder vanish together), and the serving hosts cannot read it either. The project's
pipeline.yaml keeps its local default (one machine, no credentials); the CI/CD settings of the
project point the deploy and monitor jobs at object storage instead:

- `MLOPS_TARGET_<ENV>` (the environment's name upper-cased, every other character than a
  letter or a digit as `_`: `MLOPS_TARGET_STAGING`): that environment's target;
- `MLOPS_TARGETS`: a prefix; every environment without its own variable deploys to
  `<prefix>/<env>` (`s3://bucket/penguins` → `s3://bucket/penguins/staging`).

Both are validated like `target:` (scheme, filesystem package, no credentials in the URL); an
error names the variable. An empty variable counts as unset. Credentials never go here: the
filesystem reads them from its own variables (`AWS_ACCESS_KEY_ID`, ...).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from pydantic import ValidationError

from mlops.config.models import Environment, Pipeline
from mlops.errors import ConfigError, ConfigIssue

PREFIX_VAR = "MLOPS_TARGETS"


def env_var(env: str) -> str:
    """The variable that overrides `environments.<env>.target`: `MLOPS_TARGET_STAGING`."""
    return "MLOPS_TARGET_" + re.sub(r"[^A-Za-z0-9]", "_", env).upper()


def override_for(env: str, environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """(target, the variable it came from) when the environment overrides `env`'s target."""
    environ = os.environ if environ is None else environ
    own = environ.get(env_var(env), "").strip()
    if own:
        return own, env_var(env)
    prefix = environ.get(PREFIX_VAR, "").strip().rstrip("/")
    if prefix:
        return f"{prefix}/{env}", PREFIX_VAR
    return None


def apply_overrides(pipeline: Pipeline, environ: Mapping[str, str] | None = None) -> Pipeline:
    """`pipeline` with every overridden environment's target replaced (validated).

    Raises `ConfigError` (exit 2) naming the variable when an override is not a valid target.
    """
    changed: dict[str, Environment] = {}
    issues: list[ConfigIssue] = []
    for env, spec in pipeline.environments.items():
        found = override_for(env, environ)
        if found is None:
            continue
        value, var = found
        try:
            changed[env] = Environment.model_validate({**spec.model_dump(), "target": value})
        except ValidationError as exc:
            for err in exc.errors():
                message = str(err["msg"]).removeprefix("Value error, ")
                issues.append(ConfigIssue(var, f"environments.{env}.target", message))
    if issues:
        raise ConfigError(
            issues,
            hint="Fix the variable (a directory or s3://BUCKET/PREFIX), or unset it to use "
            "pipeline.yaml's target.",
        )
    if not changed:
        return pipeline
    return pipeline.model_copy(update={"environments": {**pipeline.environments, **changed}})


def container_note(env: str, target: str, environ: Mapping[str, str] | None = None) -> str | None:
    """A note when a GitLab CI job running in a container deployed `env` to a local directory
    (the deployment vanishes with the job); None otherwise."""
    environ = os.environ if environ is None else environ
    if "://" in target or environ.get("GITLAB_CI") != "true":
        return None
    from pathlib import Path

    if not (Path("/.dockerenv").exists() or environ.get("KUBERNETES_SERVICE_HOST")):
        return None
    return (
        f"{env} was deployed to a directory inside this job's container ({target}), which "
        f"vanishes with it: set the CI/CD variable {PREFIX_VAR} (or {env_var(env)}) to an "
        "object-storage URL, or run the deploy jobs on a shell runner on the serving host"
    )
