"""Run the real kubeconform beside our validator, offline, and read its findings."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from generator.errors import EnvironmentFailure
from generator.tools import find_tool

if TYPE_CHECKING:  # imported when kubeconform runs: not at every check's start-up
    import subprocess

INSTALL_HINT = ("GOBIN=\"$PWD/.tools/bin\" go install "
                "github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0")
_INVALID = {"statusInvalid", "INVALID"}
_ERROR = {"statusError", "ERROR"}
_MISSING = "could not find schema"


@dataclass(frozen=True)
class Result:
    """One kubeconform finding, in its own terms."""

    filename: str
    kind: str
    name: str
    pointer: str
    message: str
    missing_schema: bool = False


def locate(option: str | None) -> str | None:
    """The binary to use: a path, ``required`` (must be on PATH), or auto-detect."""
    if option in (None, "", "auto", "required"):
        found = find_tool("kubeconform")
        if found is None and option == "required":
            raise EnvironmentFailure(f"kubeconform is required but not on PATH; install it: "
                                     f"{INSTALL_HINT}")
        return found
    if option == "off":
        return None
    if not (os.path.isfile(option) and os.access(option, os.X_OK)):
        raise EnvironmentFailure(f"kubeconform not found or not executable at {option}")
    return option


def cache_root() -> str:
    base = os.environ.get("K10FLEET_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "k10fleet")
    return os.path.join(base, "kubernetes-schemas")


def command(binary: str, files: list[str], kubernetes_version: str, standalone_root: str,
            locations: list[str]) -> list[str]:
    layout = "{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
    args = [binary, "-strict", "-summary", "-output", "json", "-n", "2",
            "-kubernetes-version", kubernetes_version,
            "-schema-location",
            os.path.join(standalone_root,
                         "{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}",
                         "{{ .ResourceKind }}{{ .KindSuffix }}.json")]
    for location in locations:
        args += ["-schema-location", os.path.join(location, layout)]
    return [*args, *files]


def start(args: list[str]) -> subprocess.Popen[str]:
    import subprocess

    try:
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as e:
        raise EnvironmentFailure(f"cannot run kubeconform ({args[0]}): {e.strerror}") from e


def collect(process: subprocess.Popen[str], timeout: float = 600) -> list[Result]:
    """Wait for kubeconform and turn its JSON report into results."""
    import subprocess

    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as e:
        process.kill()
        raise EnvironmentFailure(f"kubeconform did not finish within {timeout:.0f} s") from e
    try:
        report = json.loads(out)
    except ValueError as e:
        raise EnvironmentFailure(f"kubeconform printed no JSON report (exit {process.returncode})"
                                 f": {err.strip()[:300]}") from e
    results: list[Result] = []
    for resource in report.get("resources") or []:
        status = resource.get("status", "")
        base = (resource.get("filename", ""), resource.get("kind", ""),
                resource.get("name", ""))
        if status in _INVALID:
            for error in resource.get("validationErrors") or []:
                results.append(Result(*base, str(error.get("path", "")),
                                      str(error.get("msg", "invalid"))))
            if not resource.get("validationErrors"):
                results.append(Result(*base, "", str(resource.get("msg", "invalid"))))
        elif status in _ERROR:
            message = str(resource.get("msg", "error"))
            results.append(Result(*base, "", message, missing_schema=_MISSING in message))
    return results
