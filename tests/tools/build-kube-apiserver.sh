#!/usr/bin/env bash
# Builds kube-apiserver from the k8s.io/kubernetes module once, into a cache outside the clone.
# `go install k8s.io/kubernetes/cmd/kube-apiserver@VERSION` is refused because that module's
# go.mod replaces its staging modules with ./staging/...; a wrapper module pins each of them to
# the published k8s.io/X module of the matching v0.N.P version instead.
set -euo pipefail
version="${KUBE_VERSION:-v1.34.0}"
cache="${K10FLEET_TOOLS_CACHE:-$HOME/.cache/k10fleet-test-tools}/kube-apiserver-$version"
bin="$cache/kube-apiserver"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
staging="v0.${version#v1.}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init k10fleet.test/kube-apiserver >/dev/null 2>&1
go mod edit -require="k8s.io/kubernetes@$version"
modfile="$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
grep -oE 'k8s.io/[a-z0-9-]+ => ./staging/src/k8s.io/[a-z0-9-]+' "$modfile" | awk '{print $1}' | sort -u |
  while read -r m; do go mod edit -replace="$m=$m@$staging"; done
cat > main.go <<'GO'
package main

import _ "k8s.io/kubernetes/cmd/kube-apiserver/app"

func main() {}
GO
GOFLAGS=-mod=mod go mod tidy >/dev/null
mkdir -p "$cache"
GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$bin.tmp" k8s.io/kubernetes/cmd/kube-apiserver
mv "$bin.tmp" "$bin"
echo "$bin"
