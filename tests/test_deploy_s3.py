"""An environment whose target is object storage (moto's S3 server on 127.0.0.1), followed by a
fleet of two real `mlops serve --env staging` processes with their own caches: deploys under
load, SIGKILLed deploys at every step, a byte changed in S3, a pointer outside `versions/`.
Real parts: git, DVC, scikit-learn, s3fs/boto3 against moto_server, uvicorn on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from mlops import api
from mlops.deploy.faults import FAULT_ENV, STEPS
from mlops.deploy.integrity import recorded_md5
from mlops.deploy.remote import SCRATCH_PREFIX, RemoteTarget, open_any
from tests.helpers import commit_all, git
from tests.registry_helpers import NAME
from tests.serve_helpers import ROW, free_port, stop
from tests.test_deploy import _released_template, python_env  # noqa: F401  (a fixture)
from tests.test_remote_s3 import SECRET, s3_server  # noqa: F401  (a fixture)

pytestmark = pytest.mark.slow
BUCKET = "mlops-targets"
BUNDLE = f"models/{NAME}"


@pytest.fixture
def s3_env(s3_server, monkeypatch):  # noqa: F811
    """Credentials and the endpoint in the environment only (as a CI job or a pod gets them)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "mlops-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server)
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    return s3


@pytest.fixture
def on_s3(tmp_path: Path, _released_template: Path, s3_env) -> tuple[Path, str]:  # noqa: F811
    """The released project (v0.0.1 and v0.0.2 registered) with staging's target in S3."""
    root = tmp_path / "released"
    shutil.copytree(_released_template, root, symlinks=True)
    url = f"s3://{BUCKET}/{tmp_path.name}/staging"
    pipe = root / "pipeline.yaml"
    text = pipe.read_text()
    assert "target: .mlops/envs/staging" in text
    pipe.write_text(text.replace("target: .mlops/envs/staging", f"target: {url}"))
    commit_all(root, "staging lives in object storage")
    return root, url


def lease_free(keys: list[str]) -> bool:
    """The deploy lease's newest generation is released (nobody holds the target)."""
    claimed = sorted(k for k in keys if k.startswith("deploy-lock/") and k.endswith(".json"))
    return not claimed or claimed[-1].replace(".json", ".released") in keys


def deploy_cli(root: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**python_env(), **({FAULT_ENV: fault} if fault else {})}
    return subprocess.run(
        [sys.executable, "-m", "mlops", "deploy", "--env", "staging", "--json", *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def start_fleet(root: Path, ports: list[int], tmp_path: Path) -> list[subprocess.Popen]:
    """`mlops serve --env staging` on each port, each with its own cache, started together."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs = []
    for i, port in enumerate(ports):
        cmd = [sys.executable, "-m", "mlops", "serve", "--env", "staging", "--poll", "0.2"]
        cmd += ["--cache-dir", str(tmp_path / f"cache{i}"), "--port", str(port)]
        procs.append(
            subprocess.Popen(
                cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    deadline = time.monotonic() + 240  # a loaded shared machine starts Python slowly
    for proc, port in zip(procs, ports, strict=True):
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                outs = [stop(p) for p in procs]
                raise AssertionError(f"mlops serve did not become ready: {outs}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    return procs


def served(port: int) -> dict:
    return httpx.get(f"http://127.0.0.1:{port}/version", timeout=10).json()


def wait_for(check, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def assert_complete(target: RemoteTarget) -> str:
    """The pointer names a version whose every byte matches its manifest and git's record."""
    pointer = target.pointer()
    assert pointer is not None
    target.download(pointer["version"], target.scratch_dir("check-"), pointer)
    return pointer["version"]


def test_s3_target_layout_and_git_hashes(on_s3, s3_env):
    root, url = on_s3
    result = api.deploy(root, "staging", version="v0.0.1")
    assert result.action == "deployed" and result.target == url
    t = open_any(url)
    assert isinstance(t, RemoteTarget)
    keys = t.store.list()
    assert "current" in keys and f"versions/v0.0.1/{'manifest.json'}" in keys
    assert "versions/v0.0.1/deployment.json" in keys
    assert [k for k in keys if k.startswith("events/")] and "deploy-journal.json" not in keys
    assert lease_free(keys)
    pointer = t.pointer()
    commit = git(root, "rev-parse", f"{NAME}@v0.0.1^{{commit}}")
    # the pointer's content hash is DVC's directory hash that git recorded at the tag
    assert pointer["dvc_md5"] == recorded_md5(root, commit, BUNDLE)
    assert [e["event"] for e in t.history()] == ["deploy"]
    # nothing was written locally under a folder named after the URL
    assert not (root / "s3:").exists() and not (root / f"s3:/{BUCKET}").exists()
    envs = {e.env: e for e in api.envs(root)}
    assert envs["staging"].live == "v0.0.1" and envs["staging"].verified is True
    assert envs["staging"].target == url


def test_two_servers_follow_one_s3_target_under_load(on_s3, tmp_path: Path):
    root, url = on_s3
    assert deploy_cli(root, "--version", "v0.0.1").returncode == 0
    ports = [free_port(), free_port()]
    procs = start_fleet(root, ports, tmp_path)
    stop_flag = threading.Event()
    seen: list[list[str]] = [[] for _ in range(4)]
    failures: list[str] = []

    def client(i: int) -> None:
        port = ports[i % 2]
        deadline = time.time() + 240
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            while not stop_flag.is_set() and time.time() < deadline:
                try:
                    r = c.post("/invocations", json={"dataframe_records": [ROW]})
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                        continue
                    seen[i].append(r.json()["version"])
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    try:
        assert all(served(p)["version"] == "v0.0.1" for p in ports)
        for t in threads:
            t.start()
        wait_for(lambda: all(len(s) >= 5 for s in seen))
        done = deploy_cli(root, "--version", "v0.0.2")
        assert done.returncode == 0, done.stderr
        wait_for(lambda: all(served(p)["version"] == "v0.0.2" for p in ports))
        wait_for(lambda: all(s[-1] == "v0.0.2" for s in seen))

        # a byte changed in an S3 object: refused, the old version keeps serving
        t = open_any(url)
        assert isinstance(t, RemoteTarget)
        manifest = t.manifest("v0.0.1")[1]
        model_key = next(k for k in manifest["files"] if k.endswith(".skops"))
        raw = bytearray(t.store.read_bytes(f"versions/v0.0.1/{model_key}"))
        raw[len(raw) // 2] ^= 0x01
        t.store.write_bytes(f"versions/v0.0.1/{model_key}", bytes(raw))
        for i in range(2):  # as on a host that never loaded v0.0.1
            for d in (tmp_path / f"cache{i}" / "versions").glob("v0.0.1-*"):
                shutil.rmtree(d) if d.is_dir() else d.unlink()
        t.switch("v0.0.1")  # a pointer naming the altered version
        wait_for(lambda: all(served(p)["pending_error"] for p in ports))
        for p in ports:
            info = served(p)
            assert info["version"] == "v0.0.2"
            assert "does not match its manifest" in info["pending_error"]["error"]

        # a pointer naming something outside versions/: refused, still serving v0.0.2
        evil = {"version": "../x", "dvc_md5": "0" * 32 + ".dir", "manifest_sha256": "0" * 64}
        t.store.write_bytes("current", json.dumps(evil).encode())
        wait_for(lambda: all("refused" in served(p)["pending_error"]["error"] for p in ports))
        assert all(served(p)["version"] == "v0.0.2" for p in ports)
        time.sleep(0.5)
    finally:
        stop_flag.set()
        for th in threads:
            th.join(60)
        outs = [stop(p) for p in procs]
    assert failures == [], failures[:5]
    versions = [v for s in seen for v in s]
    assert "v0.0.1" in versions and "v0.0.2" in versions
    for s in seen:  # each client: old version, then new, never back
        assert s[s.index("v0.0.2") :].count("v0.0.1") == 0
    assert all(SECRET not in out for out in outs)


def test_a_sigkilled_deploy_leaves_no_scratch_directory_after_the_next(
    on_s3, tmp_path: Path, monkeypatch
):
    root, _ = on_s3
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))  # the deploys' temporary directory
    killed = deploy_cli(root, "--version", "v0.0.1", fault="kill@installed")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = list(tmp.glob("mlops-target-*"))
    assert any(f.is_file() for p in left for f in p.rglob("*"))  # the killed deploy's files
    assert deploy_cli(root, "--version", "v0.0.1").returncode == 0
    assert list(tmp.glob("mlops-target-*")) == []  # its own removed at exit, the dead one too


def test_sigkilled_deploys_to_s3_leave_the_fleet_serving_and_the_next_deploy_repairs(
    on_s3, tmp_path: Path
):
    root, url = on_s3
    assert deploy_cli(root, "--version", "v0.0.1").returncode == 0
    t = open_any(url)
    assert isinstance(t, RemoteTarget)
    ports = [free_port(), free_port()]
    procs = start_fleet(root, ports, tmp_path)
    old, new = "v0.0.1", "v0.0.2"
    try:
        for step in STEPS:
            # each round deploys the version that is not live, so the rounds alternate between
            # the two and none needs a deploy of its own to set it up
            assert t.current_version() == old
            if t.has_version(new):
                t.remove_version(new)  # every round installs its version afresh
            killed = deploy_cli(root, "--version", new, fault=f"kill@{step}")
            assert killed.returncode == -signal.SIGKILL, (step, killed.stderr)
            live = assert_complete(t)  # the pointer names a complete, verified version
            assert live == (old if STEPS.index(step) < STEPS.index("switched") else new), step
            wait_for(lambda live=live: all(served(p)["version"] == live for p in ports))
            assert all(served(p)["pending_error"] is None for p in ports), step
            repaired = deploy_cli(root, "--version", new)
            assert repaired.returncode == 0, (step, repaired.stderr)
            out = json.loads(repaired.stdout)
            assert out["repaired"], step
            assert assert_complete(t) == new
            keys = t.store.list()
            assert "deploy-journal.json" not in keys and lease_free(keys), step
            assert set(t.versions()) == {"v0.0.1", "v0.0.2"}  # no incomplete upload left
            wait_for(lambda new=new: all(served(p)["version"] == new for p in ports))
            old, new = new, old
        events = [e["event"] for e in t.history()]
        assert events.count("deploy-interrupted") == STEPS.index("switched")
    finally:
        for p in procs:
            stop(p)


def test_a_pod_starts_before_the_first_deployment_and_survives_storage_outages(
    tmp_path: Path, monkeypatch
):
    """`mlops serve --target s3://...` without a checkout: 503 until a version exists, then
    serves it; while the store is down it keeps serving and says so."""
    from tests.serve_helpers import build_bundle

    port_s3 = free_port()
    exe = Path(sys.executable).parent / "moto_server"
    moto = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port_s3)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port_s3}"
    for k, v in {
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(k, v)
    server = None
    try:
        import boto3

        wait_for(lambda: boto3.client("s3").list_buckets() is not None, 30)
        boto3.client("s3").create_bucket(Bucket="pods")
        url = "s3://pods/production"
        port = free_port()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        pod = tmp_path / "pod"
        pod.mkdir()  # no pipeline.yaml, no git
        server = subprocess.Popen(
            [sys.executable, "-m", "mlops", "serve", "--target", url, "--poll", "0.2",
             "--cache-dir", str(tmp_path / "cache"), "--port", str(port), "--no-log"],
            cwd=pod, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{base}/health").status_code == 200)
        r = httpx.get(f"{base}/ready")
        assert r.status_code == 503 and r.json()["storage"]["reachable"] is True
        assert httpx.post(f"{base}/predict", json=[ROW]).status_code == 503

        t = open_any(url)
        assert isinstance(t, RemoteTarget)
        t.install(build_bundle(tmp_path / "b1"), "v1.0.0")
        t.switch("v1.0.0")
        wait_for(lambda: httpx.get(f"{base}/ready").status_code == 200)
        assert httpx.post(f"{base}/predict", json=[ROW]).json()["version"] == "v1.0.0"

        moto.terminate()
        moto.wait(10)
        wait_for(lambda: httpx.get(f"{base}/ready").json()["storage"]["reachable"] is False)
        r = httpx.get(f"{base}/ready")
        assert r.status_code == 200 and r.json()["version"] == "v1.0.0"
        assert "mlops_target_reachable 0" in httpx.get(f"{base}/metrics").text
        assert httpx.post(f"{base}/predict", json=[ROW]).status_code == 200
        assert server.poll() is None

        # a pod (re)started while the store is down starts anyway and says why it is not ready
        port2 = free_port()
        late = subprocess.Popen(
            [sys.executable, "-m", "mlops", "serve", "--target", url, "--poll", "0.2",
             "--cache-dir", str(tmp_path / "cache2"), "--port", str(port2), "--no-log"],
            cwd=pod, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            wait_for(lambda: httpx.get(f"http://127.0.0.1:{port2}/health").status_code == 200)
            r = httpx.get(f"http://127.0.0.1:{port2}/ready")
            assert r.status_code == 503 and r.json()["storage"]["reachable"] is False
        finally:
            assert SECRET not in stop(late)
    finally:
        if server is not None:
            out = stop(server)
            assert SECRET not in out
        if moto.poll() is None:
            moto.terminate()
            moto.wait(10)


def test_the_workers_of_one_server_share_one_cache(s3_env, tmp_path: Path):
    """`--workers 2` following an S3 target: one verified copy per version in the cache (the
    download is made under a file lock; the other worker finds it), both workers switch."""
    from tests.serve_helpers import build_bundle

    url = f"s3://{BUCKET}/{tmp_path.name}/workers"
    t = open_any(url)
    assert isinstance(t, RemoteTarget)
    t.install(build_bundle(tmp_path / "b1", C=1.0), "v1.0.0")
    t.switch("v1.0.0")
    port = free_port()
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "mlops", "serve", "--target", url, "--workers", "2"]
    cmd += ["--poll", "0.2", "--cache-dir", str(cache), "--port", str(port), "--no-log"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    server = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{base}/ready").status_code == 200, 240)
        t.install(build_bundle(tmp_path / "b2", C=0.05), "v1.1.0")
        t.switch("v1.1.0")

        def all_new() -> bool:  # 20 answers in a row, spread over both workers
            with httpx.Client(base_url=base) as c:
                return all(
                    c.post("/predict", json=[ROW], headers={"Connection": "close"}).json()[
                        "version"
                    ]
                    == "v1.1.0"
                    for _ in range(20)
                )

        wait_for(all_new, 120)
        copies = sorted(p.name.split("-")[0] for p in (cache / "versions").iterdir() if p.is_dir())
        assert copies == ["v1.0.0", "v1.1.0"]  # one copy of each version, no temporary left
    finally:
        out = stop(server)
    assert SECRET not in out


def test_a_live_version_altered_in_storage_is_repaired_by_deploying_it_again(on_s3, tmp_path: Path):
    """A byte of the live version changed in S3: a pod started then (empty cache) does not
    crash-loop but waits, and /ready says why; deploying the same version again uploads its
    files anew under the same manifest (instead of calling it a different version), and the
    pod switches to the repaired copy."""
    root, url = on_s3
    assert deploy_cli(root, "--version", "v0.0.1").returncode == 0
    t = open_any(url)
    assert isinstance(t, RemoteTarget)
    key = "versions/v0.0.1/model.skops"
    raw = bytearray(t.store.read_bytes(key) or b"")
    raw[len(raw) // 2] ^= 0xFF
    t.store.write_bytes(key, bytes(raw))
    pointer = t.pointer()
    with pytest.raises(Exception, match="does not match its manifest"):
        assert_complete(t)
    pod = tmp_path / "pod"
    pod.mkdir()  # no pipeline.yaml, no git
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlops", "serve", "--target", url, "--poll", "0.2",
         "--cache-dir", str(tmp_path / "cache"), "--port", str(port), "--no-log"],
        cwd=pod, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: server.poll() is not None or httpx.get(f"{base}/health").is_success)
        assert server.poll() is None, stop(server)
        r = httpx.get(f"{base}/ready")
        assert r.status_code == 503 and "fails verification" in r.json()["detail"], r.text
        # messages name the stored version, not this host's download of it
        stored = f"{url}/versions/v0.0.1 does not match its manifest: model.skops"
        assert stored in r.json()["detail"] and str(tmp_path) not in r.text, r.text
        envs = subprocess.run(
            [sys.executable, "-m", "mlops", "envs"], cwd=root, capture_output=True, text=True
        )
        assert envs.returncode == 6 and stored in envs.stderr, envs.stderr
        assert SCRATCH_PREFIX not in envs.stderr and SECRET not in envs.stderr
        again = deploy_cli(root, "--version", "v0.0.1")
        assert again.returncode == 0, again.stderr
        assert "different content" not in again.stdout + again.stderr
        assert assert_complete(t) == "v0.0.1"  # every byte verified again
        assert t.pointer()["manifest_sha256"] == pointer["manifest_sha256"]
        wait_for(lambda: httpx.get(f"{base}/ready").status_code == 200)
        assert httpx.post(f"{base}/predict", json=[ROW]).json()["version"] == "v0.0.1"
        assert httpx.get(f"{base}/version").json()["pending_error"] is None
    finally:
        stop(server)


def test_a_failed_deploy_to_s3_names_the_stored_version_not_a_scratch_copy(on_s3):
    """v0.0.3, registered with a model file that is not a model: the deploy's smoke test of the
    copy read back from S3 fails, and the message names that copy's S3 URL (it named a
    temporary directory on the runner)."""
    from mlops.bundle import read_metadata, write_bundle
    from tests.test_deploy import dvc

    root, url = on_s3
    meta = read_metadata(root / BUNDLE)
    files = {n: (root / BUNDLE / n).read_bytes() for n in meta["files"]}
    files["model.skops"] = b"not a skops file"
    write_bundle(root / BUNDLE, files, {k: v for k, v in meta.items() if k != "files"})
    dvc(root, "commit", "-f", "evaluate")
    assert subprocess.run([sys.executable, "-m", "mlops", "commit"], cwd=root).returncode == 0
    registered = subprocess.run(
        [sys.executable, "-m", "mlops", "register", "--force"], cwd=root, capture_output=True,
        text=True,
    )  # fmt: skip
    assert "v0.0.3" in registered.stderr, registered.stdout + registered.stderr
    failed = deploy_cli(root, "--version", "v0.0.3", "--force")
    assert failed.returncode == 6, failed.stdout + failed.stderr
    message = json.loads(failed.stdout)["message"]
    assert f"{url}/versions/v0.0.3/model.skops is not a readable skops model file" in message
    assert SCRATCH_PREFIX not in failed.stdout + failed.stderr and SECRET not in failed.stdout


def test_a_server_names_a_stored_version_it_cannot_load_by_its_url(s3_env, tmp_path: Path):
    """A pod following an S3 target refuses a version whose model file is not a model (it
    passed verification: the bytes are the manifest's): /version's pending_error, and a pod
    started on it, name the version's S3 URL, not the pod's cache directory."""
    from mlops.bundle import read_metadata, write_bundle
    from tests.serve_helpers import build_bundle

    url = f"s3://{BUCKET}/{tmp_path.name}/names"
    t = open_any(url)
    assert isinstance(t, RemoteTarget)
    good = build_bundle(tmp_path / "good")
    t.install(good, "v1")
    t.switch("v1")
    meta = read_metadata(good)
    files = {n: (good / n).read_bytes() for n in meta["files"]}
    files["model.skops"] = b"not a skops file"
    write_bundle(tmp_path / "bad", files, {k: v for k, v in meta.items() if k != "files"})
    stored = f"{url}/versions/v2/model.skops is not a readable skops model file"
    cmd = [sys.executable, "-m", "mlops", "serve", "--target", url, "--poll", "0.2", "--no-log"]
    port = free_port()
    server = subprocess.Popen(
        [*cmd, "--cache-dir", str(tmp_path / "cache"), "--port", str(port)], cwd=tmp_path,
        env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{base}/ready").status_code == 200, 240)
        t.install(tmp_path / "bad", "v2")
        t.switch("v2")
        wait_for(lambda: httpx.get(f"{base}/version").json()["pending_error"] is not None)
        pending = httpx.get(f"{base}/version").json()["pending_error"]
        assert stored in pending["error"] and str(tmp_path) not in pending["error"], pending
        assert httpx.post(f"{base}/predict", json=[ROW]).json()["version"] == "v1"
    finally:
        stop(server)
    started = subprocess.run(
        [*cmd, "--cache-dir", str(tmp_path / "cache2"), "--port", str(free_port())],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert started.returncode == 6 and stored in started.stderr, started.stderr
    assert str(tmp_path) not in started.stderr and SECRET not in started.stderr
