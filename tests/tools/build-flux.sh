#!/usr/bin/env bash
# Builds the Flux controllers the end-to-end tests run (source-, kustomize-, helm-controller) from
# their Go modules once, into a cache outside the clone, with their CRDs beside them.
# Each module's go.mod replaces its own api module with ./api; dropping that replace uses the
# published api module of the same version. The proxy serves github.com/fluxcd/pkg/artifact up to
# v0.18.0 only, so source-controller is pinned to it.
set -euo pipefail
root="${K10FLEET_TOOLS_CACHE:-$HOME/.cache/k10fleet-test-tools}"
build() {  # name version [extra go mod edit args...]
  local name="$1" version="$2"; shift 2
  local out="$root/flux-$name-$version"
  if [ -x "$out/$name" ] && [ -d "$out/crds" ]; then return 0; fi
  local src work
  src="$(GOFLAGS=-mod=mod go mod download -json "github.com/fluxcd/$name@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  work="$(mktemp -d)"
  cp -r "$src/." "$work/"
  chmod -R u+w "$work"
  (
    cd "$work"
    go mod edit -dropreplace="github.com/fluxcd/$name/api"
    for edit in "$@"; do go mod edit "$edit"; done
    mkdir -p "$out/crds"
    GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$out/$name.tmp" .
    cp config/crd/bases/*.yaml "$out/crds/"
    mv "$out/$name.tmp" "$out/$name"
  )
  rm -rf "$work"
}
build source-controller "${FLUX_SOURCE_VERSION:-v1.9.6}" \
  -replace=github.com/fluxcd/pkg/artifact=github.com/fluxcd/pkg/artifact@v0.18.0
build kustomize-controller "${FLUX_KUSTOMIZE_VERSION:-v1.9.6}"
build helm-controller "${FLUX_HELM_VERSION:-v1.4.0}"
echo "$root"
