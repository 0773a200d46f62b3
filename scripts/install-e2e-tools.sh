#!/usr/bin/env bash
# Installs what the end-to-end CI tests need, into .tools/ (git-ignored):
#   Node 22 (gitlab-ci-local crashes on Node 20), gitlab-ci-local, and rsync (apt) which it uses.
# Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=.tools
GCL_VERSION=${GCL_VERSION:-4.75.1}
NODE_VERSION=${NODE_VERSION:-22}

if ! command -v rsync >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get install -y -q rsync >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q rsync >/dev/null
  }
fi

if [ ! -x "$TOOLS/node/node_modules/.bin/node" ]; then
  npm install --silent --no-audit --no-fund --prefix "$TOOLS/node" "node@$NODE_VERSION"
fi
if [ ! -x "$TOOLS/gcl/node_modules/.bin/gitlab-ci-local" ]; then
  npm install --silent --no-audit --no-fund --prefix "$TOOLS/gcl" "gitlab-ci-local@$GCL_VERSION"
fi
PATH="$PWD/$TOOLS/node/node_modules/.bin:$PATH" "$TOOLS/gcl/node_modules/.bin/gitlab-ci-local" --version >/dev/null
echo "e2e tools ready in $TOOLS: node $("$TOOLS/node/node_modules/.bin/node" --version), gitlab-ci-local $GCL_VERSION, $(rsync --version | head -1 | awk '{print $1, $3}')"
