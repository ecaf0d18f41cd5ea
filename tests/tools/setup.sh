#!/usr/bin/env bash
# Installs or builds everything the test suite needs, then links it into the git-ignored .tools/:
#   .tools/bin/kubeconform                      go install (pinned version)
#   .tools/wheels/                              wheels of the package and hatchling (offline install test)
#   etcd                                        Debian's etcd-server (apt-get) when etcd is not on PATH
#   .tools/bin/kube-apiserver                   built once by build-kube-apiserver.sh
#   .tools/bin/{source,kustomize,helm}-controller, .tools/flux/<name>/crds   built once by build-flux.sh
# The builds land in ${K10FLEET_TOOLS_CACHE:-~/.cache/k10fleet-test-tools}, outside the clone, so a
# fresh clone links the cached binaries instead of rebuilding (6-9 min each, cold, on 2 cores).
# Safe to run again: every step skips what is there already. A lock keeps two runs from building
# the same thing at once.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
tools="$(cd "$(dirname "$0")" && pwd)"
cache="${K10FLEET_TOOLS_CACHE:-$HOME/.cache/k10fleet-test-tools}"
export K10FLEET_TOOLS_CACHE="$cache"
kube_version="${KUBE_VERSION:-v1.34.0}"
kubeconform_version="${KUBECONFORM_VERSION:-v0.7.0}"
bin="$repo/.tools/bin"
mkdir -p "$bin" "$repo/.tools/flux" "$cache"

need() { command -v "$1" >/dev/null || { echo "setup.sh: $1 is required ($2)" >&2; exit 3; }; }
need go "https://go.dev/dl/, Go >= 1.24"
need git "apt-get install -y git"
need openssl "apt-get install -y openssl"
need kubectl "https://kubernetes.io/docs/tasks/tools/"

if ! command -v etcd >/dev/null; then
  echo "setup.sh: installing etcd-server (apt-get)" >&2
  sudo_="" ; [ "$(id -u)" = 0 ] || sudo_="sudo"
  $sudo_ apt-get install -y etcd-server >/dev/null || {
    $sudo_ apt-get update >/dev/null && $sudo_ apt-get install -y etcd-server >/dev/null; }
fi

if [ ! -x "$bin/kubeconform" ]; then
  GOBIN="$bin" go install "github.com/yannh/kubeconform/cmd/kubeconform@$kubeconform_version"
fi
python -m pip wheel -q -w "$repo/.tools/wheels" "$repo" hatchling
# bytecode for the editable install: with PYTHONDONTWRITEBYTECODE set, Python would compile
# every module on every run (pip does this itself for a regular install)
python -m compileall -q "$repo/generator" >/dev/null

exec 9>"$cache/.build.lock"
flock 9
KUBE_VERSION="$kube_version" "$tools/build-kube-apiserver.sh" >/dev/null
ln -sfn "$cache/kube-apiserver-$kube_version/kube-apiserver" "$bin/kube-apiserver"
export FLUX_SOURCE_VERSION="${FLUX_SOURCE_VERSION:-v1.9.6}"
export FLUX_KUSTOMIZE_VERSION="${FLUX_KUSTOMIZE_VERSION:-v1.9.6}"
export FLUX_HELM_VERSION="${FLUX_HELM_VERSION:-v1.4.0}"
"$tools/build-flux.sh" >/dev/null
for pair in "source-controller $FLUX_SOURCE_VERSION" "kustomize-controller $FLUX_KUSTOMIZE_VERSION" \
            "helm-controller $FLUX_HELM_VERSION"; do
  set -- $pair
  name="$1" dir="$cache/flux-$1-$2"
  ln -sfn "$dir/$name" "$bin/$name"
  ln -sfn "$dir" "$repo/.tools/flux/$name"
done
echo "setup.sh: test tools ready in $repo/.tools (builds cached in $cache)" >&2
