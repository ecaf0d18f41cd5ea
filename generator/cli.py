"""The Click face of k10fleet: parse options, call the core, map outcomes to exit codes.

Exit codes: 0 ok; 1 invalid input or failed check; 2 usage; 3 secret store,
external tool or file system failure.
"""

from __future__ import annotations

import atexit
import functools
import gc
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

import click

from generator.check import DEFAULT_KUBERNETES_VERSION
from generator.errors import CheckFailed, EnvironmentFailure, InvalidInput, K10FleetError
from generator.problems import Problem, problems_as_json, problems_as_text

F = TypeVar("F", bound=Callable[..., Any])

FORMAT_OPTION = click.option(
    "--format", "output_format", type=click.Choice(["text", "json"]), default="text",
    show_default=True, help="Report as human-readable text or as JSON on stdout.",
)
OUTPUT_OPTION = click.option("-o", "--output", "out_dir", default=None,
                             type=click.Path(file_okay=False),
                             help="Directory of the rendered tree  [default: gitops.path "
                                  "(output) beside FLEET, wherever you run from]")
FLEET_ARGUMENT = click.argument("fleet", default="fleet.yaml", metavar="[FLEET]",
                                type=click.Path(dir_okay=False))


def fleet_and_tree(command: F) -> F:
    """The FLEET argument and the -o/--output tree, which every tree command takes."""
    return FLEET_ARGUMENT(OUTPUT_OPTION(command))


def _echo_problems(problems: Sequence[Problem], *, err: bool) -> None:
    if problems:
        click.echo(problems_as_text(problems), err=err)


def handle_errors(func: F) -> F:
    """Turn core exceptions into messages and exit codes; tracebacks only with --debug."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        debug = bool(ctx.find_root().params.get("debug"))
        as_json = kwargs.get("output_format") == "json"
        try:
            return func(*args, **kwargs)
        except CheckFailed as e:  # the command reported the differences already
            ctx.exit(e.exit_code)
        except InvalidInput as e:
            if as_json:
                click.echo(problems_as_json(e.problems))
            else:
                _echo_problems(e.problems, err=True)
            ctx.exit(e.exit_code)
        except K10FleetError as e:
            if debug:
                import traceback  # only for --debug

                traceback.print_exc()
            if as_json:
                click.echo(json.dumps({"error": str(e), "exit_code": e.exit_code}, indent=2))
            else:
                click.echo(f"k10fleet: error: {e}", err=True)
            ctx.exit(e.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except BrokenPipeError:  # the reader went away (| head): nothing left to say
            sys.stderr.close()
            ctx.exit(1)
        except Exception as e:
            if debug:
                import traceback  # only for --debug

                traceback.print_exc()
            click.echo(f"k10fleet: internal error: {type(e).__name__}: {e}. Run again with "
                       "--debug for the traceback and report it.", err=True)
            ctx.exit(1)

    return wrapper  # type: ignore[return-value]


class _Progress:
    """A one-line counter on stderr for long runs, only for a person at a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if total < 2000 and not self.shown:
            return  # small runs finish before a counter helps
        self.shown = True
        end = "\n" if done >= total else ""
        click.echo(f"\r{self.label}: {done}/{total}", err=True, nl=False)
        if end:
            click.echo("", err=True)


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def progress_for(label: str) -> _Progress | None:
    ctx = click.get_current_context()
    if ctx.find_root().params.get("quiet") or not _stderr_is_terminal():
        return None
    return _Progress(label)


def _print_version(ctx: click.Context, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    import generator

    click.echo(f"k10fleet, version {generator.__version__}")
    ctx.exit()


def run() -> NoReturn:
    """The ``k10fleet`` process: the cyclic garbage collector stays off (a short-lived
    process whose objects all live to the end: its passes cost a quarter of a 10,000-cluster
    check, and the peak memory of a 10,000-cluster render is the same without it), and the
    process ends without freeing them one by one (20-50 ms after a 2,000-cluster check):
    exit handlers run and the output is flushed first."""
    gc.disable()
    try:
        main(prog_name="k10fleet")
        code = 0
    except SystemExit as done:
        code = _exit_code(done.code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (| head): nothing more to say
            code = code or 1
    os._exit(code)


def _exit_code(code: object) -> int:
    """What ``sys.exit(code)`` would give the shell (a message is printed, then 1)."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=lambda ctx, _param, value: _print_version(ctx, value),
              help="Show the version and exit.")
@click.option("--debug", is_flag=True, help="Show tracebacks, for bug reports.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display on long runs.")
def main(debug: bool, quiet: bool) -> None:
    """Declarative Veeam Kasten K10 multi-cluster fleets for GitOps.

    Reads fleet.yaml, validates it and renders per-cluster Helm values and
    Multi-Cluster manifests into a tree that Argo CD or Flux applies.
    """


@main.command()
@click.argument("fleets", nargs=-1, metavar="[FLEET]...", type=click.Path(dir_okay=False))
@FORMAT_OPTION
@handle_errors
def validate(fleets: tuple[str, ...], output_format: str) -> None:
    """Check each FLEET (default ./fleet.yaml) against the schema and the fleet rules."""
    from generator.fleet.validate import validate_file  # not the renderer: no Jinja to load

    results = [validate_file(fleet) for fleet in fleets or ("fleet.yaml",)]
    if output_format == "json":
        if len(results) == 1:
            click.echo(problems_as_json(results[0].problems, file=results[0].file))
        else:
            click.echo("[" + ",\n".join(problems_as_json(r.problems, file=r.file)
                                         for r in results) + "]")
    else:
        _echo_validation(results)
    if not all(r.valid for r in results):
        raise click.exceptions.Exit(1)


def _echo_validation(results: Sequence[Any]) -> None:
    from generator.fleet.model import setup_path

    for result in results:
        _echo_problems(result.problems, err=False)
        if result.fleet is not None:
            count = len(result.fleet.clusters)
            click.echo(f"{result.file}: valid fleet {result.fleet.name} "
                       f"({count} cluster{'s' if count != 1 else ''})")
            if result.fleet.clusters:  # one write for all the lines (10,000 clusters: 10,000)
                click.echo("\n".join(f"  {cluster.name}: {setup_path(cluster)}"
                                      for cluster in result.fleet.clusters))


@main.command()
@fleet_and_tree
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 listing files that are missing, differ or are extra.")
@FORMAT_OPTION
@handle_errors
def render(fleet: str, out_dir: str | None, check: bool, output_format: str) -> None:
    """Render FLEET into the GitOps tree (default: output/ beside FLEET)."""
    from generator import pipeline

    outcome = pipeline.render(fleet, out_dir, check=check, progress=progress_for("writing"))
    out_dir = outcome.out_dir
    if output_format == "json":
        report: dict[str, Any] = {"fleet": outcome.fleet_name, "output": out_dir,
                                  "warnings": [p.as_text() for p in outcome.warnings],
                                  "disconnect": outcome.disconnect,
                                  "lifecycle": [n.as_json() for n in outcome.notices],
                                  "stale": [{"path": s.path, "reasons": list(s.reasons)}
                                            for s in outcome.stale],
                                  "awaiting_inject": outcome.awaiting_inject}
        if outcome.drift is not None:
            report.update(clean=outcome.drift.clean, missing=outcome.drift.missing,
                          differing=outcome.drift.differing, extra=outcome.drift.extra)
        elif outcome.written is not None:
            report.update(written=outcome.written.written, removed=outcome.written.removed,
                          unchanged=outcome.written.unchanged)
        click.echo(json.dumps(report, indent=2))
    else:
        _echo_render(outcome, fleet, outcome.out_dir, check)
    if outcome.failed:
        raise CheckFailed()


def _echo_render(outcome: Any, fleet: str, out_dir: str, check: bool) -> None:
    _echo_problems(outcome.warnings, err=True)
    if outcome.drift is not None:
        drift = outcome.drift
        for status, path in drift.entries():
            click.echo(f"{status}: {out_dir.rstrip('/')}/{path}")
        if drift.clean and not outcome.stale:
            click.echo(f"{out_dir} is up to date with {fleet}")
        elif drift.clean:
            click.echo(f"{out_dir} renders as {fleet} says, but holds stale injected "
                       "Secrets", err=True)
        else:
            click.echo(f"{out_dir} is out of date: run `k10fleet render {fleet} -o {out_dir}`"
                       " and commit the result", err=True)
    elif outcome.written is not None:
        w = outcome.written
        click.echo(f"rendered fleet {outcome.fleet_name} into {out_dir}: {len(w.written)} "
                   f"written, {w.unchanged} unchanged, {len(w.removed)} removed")
    if outcome.awaiting_inject:
        pending = outcome.awaiting_inject
        shown = ", ".join(pending[:3]) + (f" and {len(pending) - 3} more"
                                          if len(pending) > 3 else "")
        click.echo(f"{len(pending)} Secret file(s) are not in the tree yet ({shown}): run "
                   f"`k10fleet inject {fleet} -o {out_dir}`", err=True)
    _echo_stale(outcome.stale, fleet, out_dir, check)
    for notice in outcome.notices:
        click.echo(f"{notice.title}:")
        for step in notice.steps:
            click.echo(f"  {step}")
        for note in notice.notes:
            click.echo(f"  note: {note}")


def check_options(func: F) -> F:
    """The options ``check`` and ``ci`` share."""
    for option in reversed([
        click.option("--kubernetes-version", default=DEFAULT_KUBERNETES_VERSION,
                     show_default=True,
                     help="Kubernetes version whose bundled schemas validate core kinds."),
        click.option("--schema-location", "schema_locations", multiple=True,
                     type=click.Path(file_okay=False, exists=True),
                     help="Folder of CRD schemas in kubeconform's {group}/{kind}_{version}.json "
                          "layout (repeatable; searched after --crd, before the built-in "
                          "schemas)."),
        click.option("--crd", "crds", multiple=True, metavar="FILE|DIR",
                     type=click.Path(exists=True),
                     help="CustomResourceDefinition YAML (e.g. an install manifest; other "
                          "documents are ignored): validate its kinds strictly against each "
                          "served version's openAPIV3Schema. Searched first (repeatable)."),
        click.option("--strict", is_flag=True, help="A kind without a schema is an error."),
        click.option("--k10-chart", type=click.Path(exists=True),
                     help="K10 chart directory (or its values.schema.json) to validate values "
                          "with."),
        click.option("--kubeconform", "kubeconform_option", default=None,
                     metavar="PATH|required|off",
                     help="kubeconform binary; default: use it when on PATH. 'required' makes "
                          "its absence an error."),
        click.option("--kustomize", is_flag=True,
                     help="Also run `kubectl kustomize` on every kustomization (slow on big "
                          "trees)."),
    ]):
        func = option(func)
    return func


def _check_options(directory: str, params: dict[str, Any]) -> Any:
    from generator.check.run import CheckOptions

    return CheckOptions(
        root=directory, kubernetes_version=params["kubernetes_version"],
        schema_locations=list(params["schema_locations"]), crds=list(params["crds"]),
        strict=params["strict"],
        k10_chart=params["k10_chart"], kubeconform=params["kubeconform_option"],
        kustomize=params["kustomize"], fleet=params.get("fleet"))


def _echo_stale(stale: Sequence[Any], fleet: str, out_dir: str, check: bool) -> None:
    """Injected Secrets made from inputs that changed: a warning, or with --check a failure."""
    for item in stale:
        label = "stale" if check else "warning: stale injected Secret"
        click.echo(f"{label}: {out_dir.rstrip('/')}/{item.as_text()}", err=True)
    if stale:
        click.echo(f"{len(stale)} injected Secret file(s) no longer match the fleet: run "
                   f"`k10fleet inject {fleet} -o {out_dir}` and commit the result", err=True)


@main.command()
@click.argument("directory", default=None, required=False, metavar="[DIR]",
                type=click.Path(file_okay=False))
@click.option("--format", "output_format", type=click.Choice(["text", "json", "junit"]),
              default="text", show_default=True, help="Report format on stdout.")
@check_options
@click.option("--fleet", type=click.Path(dir_okay=False),
              help="Also verify the tree is what this fleet renders (render --check).")
@handle_errors
def check(directory: str | None, output_format: str, **params: Any) -> None:
    """Validate a rendered tree offline, as CI would (default ./output, or the tree of
    --fleet)."""
    from generator.check.run import run_check

    fleet = params.get("fleet")
    if directory is None and fleet:
        from generator import pipeline  # only then: a plain check loads no renderer

        directory = pipeline.default_output_dir(fleet)
    directory = directory or "output"
    result = run_check(_check_options(directory, params), progress=progress_for("checking"))
    _echo_check(result, output_format)
    if result.errors:
        raise click.exceptions.Exit(1)


def _echo_check(result: Any, output_format: str) -> None:
    from generator.check import report as reporters

    for note in result.notes:
        click.echo(f"k10fleet: {note}", err=True)
    render_report = {"text": reporters.as_text, "json": reporters.as_json,
                     "junit": reporters.as_junit}[output_format]
    click.echo(render_report(result))


@main.command()
@fleet_and_tree
@check_options
@click.option("--junit", "junit_file", type=click.Path(dir_okay=False),
              help="Also write the check stage's report as JUnit XML to this file.")
@handle_errors
def ci(fleet: str, out_dir: str | None, junit_file: str | None, **params: Any) -> None:
    """The pull-request gate in one process: validate FLEET, render --check, check.

    Prints what the three commands print, in that order, and exits with the worst of
    their exit codes (3 before 1 before 0); each stage's verdict is its command's.
    """
    from generator import pipeline
    from generator.check.gate import run_gate
    from generator.check.report import as_junit

    out_dir = out_dir or pipeline.default_output_dir(fleet)
    report = run_gate(fleet, _check_options(out_dir, params))
    codes = [0 if report.validation.valid else 1]
    _echo_validation([report.validation])
    codes.append(_echo_stage_error(report.render_error))
    if report.render is not None:
        _echo_render(report.render, fleet, out_dir, True)
        codes.append(0 if report.render.drift is None or report.render.drift.clean
                     else CheckFailed.exit_code)
    codes.append(_echo_stage_error(report.check_error))
    if report.check is not None:
        _echo_check(report.check, "text")
        codes.append(1 if report.check.errors else 0)
        if junit_file:
            with click.open_file(junit_file, "w", encoding="utf-8", atomic=True) as handle:
                handle.write(as_junit(report.check) + "\n")
    worst = 3 if 3 in codes else max(codes)
    if worst:
        raise click.exceptions.Exit(worst)


def _echo_stage_error(error: K10FleetError | None) -> int:
    """A stage that failed outright, shown as its own command shows it; its exit code."""
    if error is None:
        return 0
    if isinstance(error, InvalidInput):
        _echo_problems(error.problems, err=True)
    else:
        click.echo(f"k10fleet: error: {error}", err=True)
    return error.exit_code


@main.group()
def token() -> None:
    """Move the join token from the primary into the fleet's secret store."""


@token.command("import")
@FLEET_ARGUMENT
@click.option("--from", "source", default=None, metavar="FILE|-",
              help="Saved `kubectl get secret <joinTokenSecret> -n kasten-io-mc -o json` (or "
                   "yaml) output; - reads stdin. Default: run kubectl with "
                   "spec.primary.kubeContext/kubeconfig.")
@FORMAT_OPTION
@handle_errors
def token_import(fleet: str, source: str | None, output_format: str) -> None:
    """Store the primary's join token in the fleet's store (never printed)."""
    from generator import tokens

    loaded, with_endpoint = tokens.import_token(fleet, source, click.get_binary_stream("stdin"))
    if output_format == "json":
        click.echo(json.dumps({"stored": ["token", *(["endpoint"] if with_endpoint else [])],
                               "store": loaded.tokens.store, "primary": loaded.primary.name}))
        return
    extra = " and endpoint" if with_endpoint else ""
    click.echo(f"stored the join token{extra} of {loaded.primary.name} in {loaded.tokens.store}")


@main.command()
@fleet_and_tree
@click.option("--age", multiple=True, metavar="RECIPIENT",
              help="age recipient(s) for sops mode; default: the nearest .sops.yaml above DIR.")
@click.option("--plain-dir", type=click.Path(file_okay=False),
              help="plain mode: folder (outside any Git work tree) for plaintext Secrets.")
@FORMAT_OPTION
@handle_errors
def inject(fleet: str, out_dir: str | None, age: tuple[str, ...], plain_dir: str | None,
           output_format: str) -> None:
    """Fill every secondary's mc-join, and global profiles' credentials, from the stores."""
    from generator import pipeline

    outcome = pipeline.inject(fleet, out_dir, age=age, plain_dir=plain_dir)
    if output_format == "json":
        click.echo(json.dumps({
            "plain_files": outcome.plain_files, "encryptions": outcome.encryptions,
            "unchanged": outcome.kept, "output": outcome.out_dir or None,
            "written": outcome.written.written if outcome.written else [],
        }, indent=2))
        return
    if outcome.plain_files:
        click.echo(f"wrote {len(outcome.plain_files)} plaintext join files (0600) to "
                   f"{plain_dir}; apply each against its secondary, then delete them:")
        for path in outcome.plain_files:
            click.echo(f"  kubectl apply -f {path}")
        return
    written = outcome.written
    changed = len(written.written) if written else 0
    click.echo(f"secrets: {outcome.encryptions} encryption(s), {outcome.kept} unchanged; "
               f"{changed} file(s) written into {outcome.out_dir}")


def _duration(_ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    from generator.status import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a duration such as 90s, 5m or 1h30m",
                                 param_hint=f"--{param.name}") from None


def _saved_outputs(sources: Sequence[str]) -> dict[str, str]:
    """--from NAME=FILE items as {NAME: text}, each read bounded (FIFOs and devices refused)."""
    from generator import kubectl

    given: dict[str, str] = {}
    for item in sources:
        cluster, sep, path = item.partition("=")
        if not sep or not cluster or not path:
            raise click.BadParameter(f"expected CLUSTER=FILE, got {item!r}", param_hint="--from")
        if cluster in given:
            raise click.BadParameter(f"{cluster} given twice", param_hint="--from")
        given[cluster] = kubectl.read_saved(path, click.get_binary_stream("stdin"),
                                            kubectl.SECRET_INPUT_LIMIT)
    return given


@main.command()
@FLEET_ARGUMENT
@click.option("--from", "sources", multiple=True, metavar="CLUSTER=FILE|-",
              help="kubectl get secret mc-join-status -n kasten-io -o json output of a "
                   "secondary (repeatable); others are asked with kubectl and their kubeContext.")
@click.option("--wait", is_flag=True, help="Poll until every secondary has joined, or until "
              "--timeout.")
@click.option("--timeout", "timeout", default="10m", show_default=True, metavar="DURATION",
              callback=_duration, help="How long --wait polls (90s, 5m, 1h30m).")
@click.option("--interval", default="5s", show_default=True, metavar="DURATION",
              callback=_duration, help="Pause between --wait polls.")
@FORMAT_OPTION
@handle_errors
def status(fleet: str, sources: tuple[str, ...], wait: bool, timeout: float, interval: float,
           output_format: str) -> None:
    """Each secondary's join status; exit 0 only when all have joined (a CI gate)."""
    from generator import status as join_status

    paths = {item.partition("=")[0]: item.partition("=")[2] for item in sources}
    _, results = join_status.wait_for_join(fleet, _saved_outputs(sources),
                                           wait=timeout if wait else None, interval=interval,
                                           source_names=paths)
    click.echo(join_status.as_json(results) if output_format == "json"
               else join_status.as_table(results))
    failed = [r for r in results if r.error]
    for result in failed:
        click.echo(f"k10fleet: error: {result.error}", err=True)
    pending = [r.cluster for r in results if not r.joined]
    if failed:
        raise click.exceptions.Exit(EnvironmentFailure.exit_code)
    if pending:
        click.echo(f"k10fleet: {len(pending)} secondar{'y' if len(pending) == 1 else 'ies'} "
                   f"not joined: {', '.join(pending)}", err=True)
        raise click.exceptions.Exit(CheckFailed.exit_code)


@main.command()
@FLEET_ARGUMENT
@click.option("--from", "source", default=None, metavar="FILE|-",
              help="Output of `kubectl get clusters.dist.kio.kasten.io -n kasten-io-mc -o json` "
                   "on the primary, to show a plan; without it kubectl is run with "
                   "spec.primary.kubeContext.")
@click.option("--apply", "apply_changes", is_flag=True,
              help="Label the Cluster objects that exist (kubectl label/annotate on the "
                   "primary); never creates or deletes one.")
@FORMAT_OPTION
@handle_errors
def labels(fleet: str, source: str | None, apply_changes: bool, output_format: str) -> None:
    """Show (exit 1 on drift) or --apply the fleet's labels on K10's Cluster objects."""
    from generator import kubectl
    from generator import labels as cluster_labels

    given = None
    if source is not None:
        given = kubectl.read_saved(source, click.get_binary_stream("stdin"),
                                   kubectl.LIST_INPUT_LIMIT)
    _, changes, applied = cluster_labels.reconcile(fleet, given=given, source=source or "-",
                                                   apply=apply_changes)
    click.echo(cluster_labels.plan_as_json(changes) if output_format == "json"
               else cluster_labels.plan_table(changes))
    drifting = sum(1 for c in changes if c.state == "drift")
    if applied:
        click.echo(f"applied labels to {drifting} Cluster object(s)", err=True)
    elif drifting:
        click.echo(f"{drifting} Cluster object(s) differ from the fleet: run `k10fleet labels "
                   f"{fleet} --apply`", err=True)
        raise CheckFailed()


def _interactive() -> bool:
    """Prompts only for a person at a terminal, never in CI or pipes."""
    return sys.stdin.isatty() and sys.stdout.isatty()


@main.command()
def schema() -> None:
    """Print the fleet.yaml JSON Schema (for editors and the YAML language server)."""
    from generator.resources import read_text

    click.echo(read_text("schemas/fleet.schema.json"), nl=False)


INIT_FLAGS = {"name": "--name", "primary": "--primary", "ingress": "--ingress",
              "secondaries": "--secondary", "version": "--k10-version", "engine": "--engine",
              "token_mode": "--token-mode", "store": "--store", "repo_url": "--repo-url"}
ENGINES = ["argocd", "flux", "none"]


@main.command()
@click.argument("path", default="fleet.yaml", type=click.Path(dir_okay=False))
@click.option("--name", help="Fleet name (DNS-1123 label); default: the folder's name, "
                             "made DNS-safe.")
@click.option("--primary", help="The primary cluster's name (required, or asked on a "
                                "terminal).")
@click.option("--ingress", help="The primary's dashboard URL, e.g. "
                                "https://primary.example.com/k10 (required, or asked).")
@click.option("--secondary", "secondaries", multiple=True, help="A secondary's name (repeatable).")
@click.option("--k10-version", "version", default="7.5.2", show_default=True)
@click.option("--engine", type=click.Choice(ENGINES), default=None,
              help="GitOps engine that applies the tree  [default: none; asked on a terminal]")
@click.option("--token-mode", type=click.Choice(["sops", "external-secrets", "vault-plugin",
                                                 "plain"]), default="sops", show_default=True)
@click.option("--store", default="", help="Secret store URI (default vault://secret/k10fleet/NAME).")
@click.option("--repo-url", default="", help="Git repository the engine follows (needed for "
                                              "argocd and flux).")
@click.option("--force", is_flag=True, help="Overwrite an existing fleet file.")
@FORMAT_OPTION
@handle_errors
def init(path: str, name: str | None, primary: str | None, ingress: str | None,
         secondaries: tuple[str, ...], version: str, engine: str | None, token_mode: str,
         store: str, repo_url: str, force: bool, output_format: str) -> None:
    """Create a commented fleet.yaml (plus fleet.schema.json and .gitignore entries beside
    it) from flags, or by asking on a terminal."""
    from generator import scaffold

    name = name or scaffold.default_name(path)
    if _interactive():
        name = click.prompt("Fleet name", default=name)
        primary = primary or click.prompt("Primary cluster name", default="primary-1")
        ingress = ingress or click.prompt("Primary dashboard URL",
                                          default=f"https://{primary}.example.com/k10")
        if not secondaries:
            listed = click.prompt("Secondary cluster names (comma-separated)", default="edge-1")
            secondaries = tuple(s.strip() for s in listed.split(",") if s.strip())
        engine = engine or click.prompt("GitOps engine", type=click.Choice(ENGINES),
                                        default="none")
        if engine in ("argocd", "flux") and not repo_url:
            repo_url = click.prompt("Git repository URL the engine follows")
    engine = engine or "none"
    missing = [flag for flag, value in (("--primary", primary), ("--ingress", ingress))
               if not value]
    if engine in ("argocd", "flux") and not repo_url:
        missing.append(f"--repo-url (needed with --engine {engine})")
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)} (or run on a terminal to be asked)")
    assert primary and ingress
    try:
        text = scaffold.scaffold_text(scaffold.Answers(
            name=name, primary=primary, ingress=ingress, secondaries=list(secondaries),
            version=version, engine=engine, token_mode=token_mode, store=store,
            repo_url=repo_url))
    except scaffold.BadAnswers as e:
        raise click.UsageError("\n".join(
            f"invalid value for {INIT_FLAGS.get(field, 'the flags')}"
            f"{f' {value!r}' if field else ''}: {message}"
            for field, value, message in e.problems)) from None
    scaffold.write_fleet(path, text, force=force)
    schema_file = scaffold.write_schema(path)
    gitignore, added = scaffold.update_gitignore(path)
    if output_format == "json":
        click.echo(json.dumps({"created": os.path.abspath(path), "schema": schema_file,
                               "gitignore": gitignore, "gitignore_added": added}))
    else:
        click.echo(f"created {os.path.abspath(path)} and {schema_file}"
                   + (f"; added {', '.join(added)} to {gitignore}" if added else ""))
        click.echo(f"next: k10fleet validate {path} && k10fleet render {path}")


@main.command()
@fleet_and_tree
@click.option("--color/--no-color", default=None,
              help="Colour the diff (default: on a terminal, unless NO_COLOR is set).")
@click.option("--format", "output_format", type=click.Choice(["text", "json", "markdown"]),
              default="text", show_default=True,
              help="A unified diff, JSON, or a Markdown summary for a pull request.")
@handle_errors
def diff(fleet: str, out_dir: str | None, color: bool | None, output_format: str) -> None:
    """Show what render would change in the tree; exit 1 when it would change anything.

    --format markdown summarises the change for a pull request (and exits 0: it is a
    report; render --check is the gate): clusters joining and leaving (with their
    disconnect commands), K10 versions, Helm values per cluster, token objects touched
    and the Secrets that need inject. Give a base branch's tree with -o to compare
    against it.
    """
    from generator import pipeline

    result = pipeline.diff(fleet, out_dir)
    changes = result.changes
    if output_format == "json":
        click.echo(json.dumps([{"path": c.path, "status": c.status, "diff": c.diff}
                               for c in changes], indent=2))
    elif output_format == "markdown":  # a report for a PR, not a gate: exit 0 either way
        from generator import summary

        click.echo(summary.as_markdown(summary.build_summary(result), fleet), nl=False)
        return
    else:
        if color is None:
            color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        for change in changes:
            for line in change.diff.splitlines():
                style: dict[str, Any] | None = None
                if line.startswith(("+++", "---")):
                    style = {"bold": True}
                elif line.startswith("+"):
                    style = {"fg": "green"}
                elif line.startswith("-"):
                    style = {"fg": "red"}
                elif line.startswith("@@"):
                    style = {"fg": "cyan"}
                click.echo(click.style(line, **style) if color and style else line,
                           color=color)
        if not changes:
            click.echo(f"{result.out_dir} is up to date with {fleet}")
    if changes:
        raise click.exceptions.Exit(1)
