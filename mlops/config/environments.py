"""`environments:` of pipeline.yaml: where each environment deploys, what it tracks or pins,
and its Kubernetes settings (`mlops manifests`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from mlops.config.base import Strict

K8S_NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"  # a DNS label: namespaces, Secrets
K8S_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"  # 500m, 1, 512Mi, 2Gi


class KubernetesResources(Strict):
    """A container's `resources:`: requests and limits of cpu and memory."""

    requests: dict[Literal["cpu", "memory"], Annotated[str, Field(pattern=K8S_QUANTITY)]] = {}  # noqa: RUF012 (pydantic copies it)
    limits: dict[Literal["cpu", "memory"], Annotated[str, Field(pattern=K8S_QUANTITY)]] = {}  # noqa: RUF012 (pydantic copies it)


class KubernetesAutoscale(Strict):
    """A HorizontalPodAutoscaler on cpu utilisation."""

    min: int = Field(2, ge=1, le=1000)
    max: int = Field(10, ge=1, le=1000)
    cpu: int = Field(70, ge=1, le=100, description="target average cpu utilisation, percent")

    @model_validator(mode="after")
    def _order(self) -> KubernetesAutoscale:
        if self.max < self.min:
            raise ValueError("`max` must be at least `min`")
        return self


class ConfigRepository(Strict):
    """A separate git repository Argo CD or Flux watches: the manifests are pushed there."""

    url: str = Field(min_length=1, max_length=500)
    branch: str = Field("main", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
    path: str | None = Field(None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}$")

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, v: str) -> str:
        """A URL with a password or token in it would land in logs: refused."""
        import re

        if re.match(r"^[a-z][a-z0-9+.-]*://[^/@]*:[^/@]*@", v):
            raise ValueError(
                "credentials in the URL: give them to git instead (MLOPS_GIT_TOKEN, a "
                "credential helper, an SSH key)"
            )
        if v.startswith("-"):
            raise ValueError("a URL cannot start with '-'")
        return v

    @field_validator("path")
    @classmethod
    def _inside(cls, v: str | None) -> str | None:
        if v is not None and (".." in v.split("/") or v.startswith("/")):
            raise ValueError("a path inside the repository (no '..', not absolute)")
        return v.rstrip("/") if v else v


class KubernetesSpec(Strict):
    """`kubernetes:` of an environment: what `mlops manifests` renders under deploy/k8s/ENV/."""

    namespace: str = Field(pattern=K8S_NAME)
    image: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$")
    replicas: int = Field(2, ge=0, le=1000)
    resources: KubernetesResources | None = None
    autoscale: KubernetesAutoscale | None = None
    workers: int = Field(1, ge=1, le=64)
    port: int = Field(8080, ge=1024, le=65535)
    secret: str | None = Field(None, pattern=K8S_NAME, description="Secret with credentials")
    target: str | None = Field(None, description="the storage URL pods serve from")
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    config_repo: ConfigRepository | None = None


class Environment(Strict):
    """A deployment environment: tracks the latest good version, or is pinned by a file."""

    track: Literal["latest"] | None = None
    pin: str | None = None
    target: str | None = None
    promotion: Literal["merge_request", "tag"] | None = None
    url: str | None = None
    kubernetes: KubernetesSpec | None = None

    @field_validator("target")
    @classmethod
    def _target_url(cls, v: str | None) -> str | None:
        """A local directory, or an object-store URL whose filesystem package is installed."""
        if v is None:
            return v
        from mlops.config.storage_url import missing_package, parse_target
        from mlops.errors import MlopsError

        try:
            url = parse_target(v, where="")  # the config error names the key
            problem = missing_package(url, where="")
        except MlopsError as exc:
            raise ValueError(f"{exc.message}. {exc.hint or ''}".strip()) from None
        if problem is not None:
            raise ValueError(f"{problem.message}. {problem.hint}")
        return v

    @model_validator(mode="after")
    def _track_or_pin(self) -> Environment:
        if (self.track is None) == (self.pin is None):
            raise ValueError("an environment needs exactly one of `track: latest` or `pin: FILE`")
        return self
