"""Join tokens end to end with real parts: OpenBao dev server, sops with age keys, files."""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.tools import find_tool
from tests.conftest import KUBECTL, SHARED, OpenBao, example_fleet, run_cli, tree_bytes

WriteFleet = Callable[..., Path]


def new_token() -> str:
    return "eyJrMTAiOiJqb2luIn0." + secrets.token_urlsafe(48)


def kubectl_secret(token: str | None, *, name: str = "join-token-secret",
                   kind_type: str = "dist.kio.kasten.io/join-token",
                   endpoint: str | None = None) -> dict[str, Any]:
    data = {}
    if token is not None:
        data["token"] = base64.b64encode(token.encode()).decode()
    if endpoint:
        data["endpoint"] = base64.b64encode(endpoint.encode()).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": kind_type,
            "metadata": {"name": name, "namespace": "kasten-io-mc"}, "data": data}


def leaks(token: str, *texts: str | bytes) -> list[str]:
    """Every place a token, or its base64, shows up."""
    needles = [token, base64.b64encode(token.encode()).decode()]
    found = []
    for text in texts:
        haystack = text.decode(errors="replace") if isinstance(text, bytes) else text
        found += [n[:8] for n in needles if n in haystack]
    return found


def tree_leaks(token: str, root: Path) -> list[str]:
    return [rel for rel, content in tree_bytes(root).items() if leaks(token, content)]


def joining_fleet() -> dict[str, Any]:
    """The example fleet without global profiles (whose credentials need a store of their
    own): for tests about the join token alone."""
    data = example_fleet()
    for key in ("policies", "profiles", "distributions"):
        data["spec"].pop(key, None)
    return data


def store_profile_credentials(openbao: OpenBao, path: str, values: dict[str, str]) -> None:
    import hvac

    client = hvac.Client(url=openbao.address, token=openbao.token)
    client.secrets.kv.v2.create_or_update_secret(path=path, secret=values, mount_point="secret")


S3_CREDENTIALS = {"aws_access_key_id": "AKIA" + "EXAMPLE0123456789",
                  "aws_secret_access_key": "s3cr3t/" + secrets.token_urlsafe(24)}


@pytest.fixture
def fleet_repo(tmp_path: Path, write_fleet: WriteFleet, vault_env: OpenBao,
               age_key: str) -> Iterator[tuple[Path, Path, str]]:
    """A fleet repo with a .sops.yaml, a unique Vault path, and its rendered tree."""
    data = example_fleet()
    data["spec"]["tokens"]["store"] = f"vault://secret/k10fleet/{tmp_path.name}"
    profile_path = f"k10fleet/{tmp_path.name}-s3"
    data["spec"]["profiles"][0]["credentials"]["store"] = f"vault://secret/{profile_path}"
    store_profile_credentials(vault_env, profile_path, S3_CREDENTIALS)
    fleet = write_fleet(data)
    (tmp_path / ".sops.yaml").write_text(
        f"creation_rules:\n  - path_regex: .*\n    age: {age_key}\n")
    out = tmp_path / "output"
    assert run_cli("render", fleet, "-o", out).exit_code == 0
    yield fleet, out, age_key


def import_token(fleet: Path, token: str, tmp_path: Path, **kwargs: Any) -> Any:
    source = tmp_path / "join-token.json"
    source.write_text(json.dumps(kubectl_secret(token, **kwargs)))
    return run_cli("token", "import", fleet, "--from", source)


def decrypt(path: Path) -> dict[str, Any]:
    sops = find_tool("sops") or "sops"
    out = subprocess.run([sops, "--decrypt", "--output-type", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    data: dict[str, Any] = json.loads(out)
    return data


def test_import_inject_decrypt_round_trip(fleet_repo: tuple[Path, Path, str],
                                          tmp_path: Path) -> None:
    fleet, out, _ = fleet_repo
    token = new_token()
    imported = import_token(fleet, token, tmp_path)
    assert imported.exit_code == 0, imported.output
    assert "stored the join token of primary-1 in vault://secret/k10fleet/" in imported.output
    injected = run_cli("inject", fleet, "-o", out)
    assert injected.exit_code == 0, injected.output
    # one encryption serves every secondary's mc-join, one more the profile's credentials
    assert "2 encryption(s), 0 unchanged" in injected.output
    credentials = decrypt(out / "clusters/primary-1/credentials-s3-backups-credentials.sops.yaml")
    assert credentials["type"] == "secrets.kanister.io/aws"
    assert credentials["metadata"]["name"] == "s3-backups-credentials"
    assert credentials["metadata"]["namespace"] == "kasten-io-mc"
    assert {k: base64.b64decode(v).decode() for k, v in credentials["data"].items()} == \
        S3_CREDENTIALS
    for value in S3_CREDENTIALS.values():
        assert tree_leaks(value, out) == []
        assert leaks(value, injected.output) == []
    primary = yaml.safe_load((out / "clusters/primary-1/kustomization.yaml").read_text())
    assert primary["generators"] == ["secret-generator.yaml"]  # Argo CD: KSOPS decrypts it
    assert "credentials-s3-backups-credentials.sops.yaml" not in primary["resources"]
    profile = yaml.safe_load((out / "clusters/primary-1/profile-s3-backups.yaml").read_text())
    assert profile["spec"]["locationSpec"]["credential"]["secret"] == {
        "apiVersion": "v1", "kind": "Secret", "name": "s3-backups-credentials",
        "namespace": "kasten-io-mc"}
    for name in ("edge-1", "edge-2"):
        secret = decrypt(out / f"clusters/{name}/mc-join.sops.yaml")
        assert base64.b64decode(secret["data"]["token"]).decode() == token
        assert secret["metadata"] == {**secret["metadata"], "name": "mc-join",
                                      "namespace": "kasten-io"}
    assert not (out / "clusters/lab-1/mc-join.sops.yaml").exists()  # joined by k10multicluster
    assert tree_leaks(token, out) == []
    assert leaks(token, imported.output, injected.output) == []
    encrypted = yaml.safe_load((out / "clusters/edge-1/mc-join.sops.yaml").read_text())
    assert encrypted["sops"]["encrypted_regex"] == "^(data|stringData)$"
    checked = run_cli("check", out, "--kubeconform", "required", "--schema-location",
                      str(SHARED / "crd-schemas"))
    assert checked.exit_code == 0, checked.output
    assert "0 errors, 0 warnings (kubeconform used)" in checked.output
    assert (out / "clusters/edge-1/mc-join.sops.yaml").read_text().startswith("apiVersion: v1\n")


def test_argocd_tree_uses_ksops_and_builds_without_it(fleet_repo: tuple[Path, Path, str],
                                                      tmp_path: Path) -> None:
    fleet, out, _ = fleet_repo
    import_token(fleet, new_token(), tmp_path)
    assert run_cli("inject", fleet, "-o", out).exit_code == 0
    edge = out / "clusters/edge-1"
    kustomization = yaml.safe_load((edge / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["mc-join-config.yaml"]
    assert kustomization["generators"] == ["secret-generator.yaml"]
    generator = yaml.safe_load((edge / "secret-generator.yaml").read_text())
    assert (generator["apiVersion"], generator["kind"]) == ("viaduct.ai/v1", "ksops")
    assert generator["files"] == ["./mc-join.sops.yaml"]
    kustomization.pop("generators")
    (edge / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    built = subprocess.run([KUBECTL, "kustomize", str(edge)], capture_output=True, text=True,
                           check=False)
    assert built.returncode == 0, built.stderr
    assert [d["kind"] for d in yaml.safe_load_all(built.stdout)] == ["ConfigMap"]


def test_flux_tree_lists_the_encrypted_secret(fleet_repo: tuple[Path, Path, str],
                                              tmp_path: Path, write_fleet: WriteFleet) -> None:
    fleet, out, _ = fleet_repo
    data = yaml.safe_load(fleet.read_text())
    data["spec"]["gitops"]["engine"] = "flux"
    write_fleet(data)
    import_token(fleet, new_token(), tmp_path)
    assert run_cli("inject", fleet, "-o", out).exit_code == 0
    kustomization = yaml.safe_load((out / "clusters/edge-2/kustomization.yaml").read_text())
    assert kustomization["resources"] == ["mc-join-config.yaml", "mc-join.sops.yaml"]
    assert "generators" not in kustomization


def test_render_keeps_injected_files_and_inject_rewrites_only_on_change(
        fleet_repo: tuple[Path, Path, str], tmp_path: Path, vault_env: OpenBao) -> None:
    fleet, out, _ = fleet_repo
    import_token(fleet, new_token(), tmp_path)
    assert run_cli("inject", fleet, "-o", out).exit_code == 0
    secret = out / "clusters/edge-1/mc-join.sops.yaml"
    before = os.stat(secret)
    rendered = run_cli("render", fleet, "-o", out)
    assert "0 written" in rendered.output and "0 removed" in rendered.output
    assert run_cli("render", fleet, "-o", out, "--check").exit_code == 0
    again = run_cli("inject", fleet, "-o", out)
    assert "0 encryption(s), 3 unchanged; 0 file(s) written" in again.output
    assert os.stat(secret).st_mtime_ns == before.st_mtime_ns
    new = new_token()
    import_token(fleet, new, tmp_path)
    changed = run_cli("inject", fleet, "-o", out)
    assert "1 encryption(s), 1 unchanged" in changed.output  # the profile's Secret is kept
    assert base64.b64decode(decrypt(secret)["data"]["token"]).decode() == new
    # rotating the profile's credentials re-encrypts that Secret alone
    credentials = out / "clusters/primary-1/credentials-s3-backups-credentials.sops.yaml"
    data = yaml.safe_load(fleet.read_text())
    path = data["spec"]["profiles"][0]["credentials"]["store"].removeprefix("vault://secret/")
    rotated = {**S3_CREDENTIALS, "aws_secret_access_key": "rotated-" + secrets.token_hex(8)}
    store_profile_credentials(vault_env, path, rotated)
    distribution = out / "clusters/primary-1/distribution-prod-backups.yaml"

    def digest() -> str:
        value: str = yaml.safe_load(distribution.read_text())["metadata"]["annotations"][
            "k10fleet.io/sources-digest"]
        return value

    before_rotation = digest()
    rotation = run_cli("inject", fleet, "-o", out)
    assert "1 encryption(s), 2 unchanged" in rotation.output, rotation.output
    assert base64.b64decode(decrypt(credentials)["data"]["aws_secret_access_key"]).decode() \
        == rotated["aws_secret_access_key"]
    # K10 re-sends a global profile only when its Distribution changes: the digest does
    assert digest() != before_rotation
    assert run_cli("render", fleet, "-o", out, "--check").exit_code == 0
    # a new Secret name: the old file goes, the new one waits for inject (render says so)
    data = yaml.safe_load(fleet.read_text())
    data["spec"]["profiles"][0]["credentials"]["secretName"] = "s3-backups-v2"
    fleet.write_text(yaml.safe_dump(data, sort_keys=False))
    renamed = run_cli("render", fleet, "-o", out)
    assert not credentials.exists()
    assert "clusters/primary-1/credentials-s3-backups-v2.sops.yaml" in renamed.output
    assert "run `k10fleet inject" in renamed.output
    assert run_cli("inject", fleet, "-o", out).exit_code == 0
    credentials = out / "clusters/primary-1/credentials-s3-backups-v2.sops.yaml"
    assert decrypt(credentials)["metadata"]["name"] == "s3-backups-v2"
    # a profile that leaves the fleet takes its Secret with it
    for key in ("profiles", "distributions"):
        del data["spec"][key]
    data["spec"]["policies"][0]["spec"]["actions"] = [{"action": "backup"}]
    fleet.write_text(yaml.safe_dump(data, sort_keys=False))
    assert run_cli("render", fleet, "-o", out).exit_code == 0
    assert not credentials.exists()
    assert secret.exists()


def test_store_down_changes_nothing(fleet_repo: tuple[Path, Path, str], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    fleet, out, _ = fleet_repo
    token = new_token()
    import_token(fleet, token, tmp_path)
    run_cli("inject", fleet, "-o", out)
    before = tree_bytes(out)
    import_token(fleet, new_token(), tmp_path)
    down = OpenBao(tmp_path)
    down.stop()  # a real server address that now refuses connections
    monkeypatch.setenv("VAULT_ADDR", down.address)
    result = run_cli("inject", fleet, "-o", out)
    assert result.exit_code == 3
    assert f"secret store vault://secret/k10fleet/{tmp_path.name}: cannot reach" in result.output
    assert "Traceback" not in result.output
    assert tree_bytes(out) == before


def test_wrong_vault_token_is_denied(fleet_repo: tuple[Path, Path, str], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fleet, _, _ = fleet_repo
    monkeypatch.setenv("VAULT_TOKEN", "not-the-root-token")
    result = import_token(fleet, new_token(), tmp_path)
    assert result.exit_code == 3
    assert "permission denied while reading" in result.output


def test_missing_path_is_a_store_error(fleet_repo: tuple[Path, Path, str]) -> None:
    fleet, out, _ = fleet_repo
    before = tree_bytes(out)
    result = run_cli("inject", fleet, "-o", out)
    assert result.exit_code == 3
    assert "nothing stored at secret/k10fleet/" in result.output
    assert tree_bytes(out) == before


@pytest.mark.parametrize(("payload", "message"), [
    ("{not json", "not the JSON or YAML that kubectl get secret prints"),
    (json.dumps(kubectl_secret("x", kind_type="Opaque")), "not a K10 join-token Secret"),
    (json.dumps(kubectl_secret("x", name="other")), "no Secret named 'join-token-secret'"),
    (json.dumps(kubectl_secret(None)), "has no token yet"),
    (json.dumps({"kind": "List", "items": []}), "no Secret named"),
])
def test_bad_kubectl_output_is_rejected_without_echo(fleet_repo: tuple[Path, Path, str],
                                                     tmp_path: Path, payload: str,
                                                     message: str) -> None:
    fleet, _, _ = fleet_repo
    source = tmp_path / "in.json"
    source.write_text(payload)
    result = run_cli("token", "import", fleet, "--from", source)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_import_reads_yaml_lists_from_stdin(fleet_repo: tuple[Path, Path, str]) -> None:
    from click.testing import CliRunner

    from generator.cli import main

    fleet, _, _ = fleet_repo
    token = new_token()
    listing = {"apiVersion": "v1", "kind": "List", "items": [
        kubectl_secret("other", name="unrelated", kind_type="Opaque"),
        kubectl_secret(token, endpoint="https://primary.example.com/k10")]}
    result = CliRunner().invoke(main, ["token", "import", str(fleet), "--from", "-"],
                                input=yaml.safe_dump(listing))
    assert result.exit_code == 0, result.output
    assert "join token and endpoint" in result.output
    assert leaks(token, result.output) == []


def test_old_secondaries_get_the_endpoint(fleet_repo: tuple[Path, Path, str], tmp_path: Path,
                                          write_fleet: WriteFleet) -> None:
    fleet, out, _ = fleet_repo
    data = yaml.safe_load(fleet.read_text())
    data["spec"]["secondaries"][1]["kasten"] = {"version": "6.5.10"}
    write_fleet(data)
    import_token(fleet, new_token(), tmp_path)
    missing = run_cli("inject", fleet, "-o", out)
    assert missing.exit_code == 3 and "need the primary's endpoint too" in missing.output
    import_token(fleet, new_token(), tmp_path, endpoint="https://10.0.0.1:443")
    assert run_cli("inject", fleet, "-o", out).exit_code == 0
    old = decrypt(out / "clusters/edge-2/mc-join.sops.yaml")["data"]
    assert base64.b64decode(old["endpoint"]).decode() == "https://10.0.0.1:443"
    assert "endpoint" not in decrypt(out / "clusters/edge-1/mc-join.sops.yaml")["data"]


def test_age_flag_without_sops_config(tmp_path: Path, write_fleet: WriteFleet,
                                      monkeypatch: pytest.MonkeyPatch, age_key: str) -> None:
    token = new_token()
    monkeypatch.setenv("K10_TOKEN", token)
    data = joining_fleet()
    data["spec"]["tokens"]["store"] = "env://K10_TOKEN"
    fleet = write_fleet(data)
    out = tmp_path / "output"
    assert run_cli("inject", fleet, "-o", out).exit_code == 2  # no .sops.yaml, no --age
    result = run_cli("inject", fleet, "-o", out, "--age", age_key)
    assert result.exit_code == 0, result.output
    assert base64.b64decode(decrypt(out / "clusters/edge-2/mc-join.sops.yaml")["data"]
                            ["token"]).decode() == token
    assert tree_leaks(token, out) == []


def test_env_and_file_store_faults(tmp_path: Path, write_fleet: WriteFleet,
                                   monkeypatch: pytest.MonkeyPatch, age_key: str) -> None:
    data = joining_fleet()
    data["spec"]["tokens"]["store"] = "env://K10_TOKEN"
    fleet = write_fleet(data)
    out = tmp_path / "output"
    monkeypatch.setenv("K10_TOKEN", "  ")
    empty = run_cli("inject", fleet, "-o", out, "--age", age_key)
    assert empty.exit_code == 3 and "environment variable K10_TOKEN is empty" in empty.output
    monkeypatch.delenv("K10_TOKEN")
    unset = run_cli("inject", fleet, "-o", out, "--age", age_key)
    assert unset.exit_code == 3 and "K10_TOKEN is not set" in unset.output
    store_file = tmp_path / "token.yaml"
    store_file.write_text(f"token: {new_token()}\n")
    store_file.chmod(0o644)
    data["spec"]["tokens"]["store"] = f"file://{store_file}"
    write_fleet(data)
    loose = run_cli("inject", fleet, "-o", out, "--age", age_key)
    assert loose.exit_code == 3 and "readable by group or others" in loose.output
    assert not out.exists()
    store_file.chmod(0o600)
    assert run_cli("inject", fleet, "-o", out, "--age", age_key).exit_code == 0


def test_file_and_sops_stores_round_trip(tmp_path: Path, write_fleet: WriteFleet,
                                         age_key: str) -> None:
    from generator.secrets.base import open_store

    file_store = open_store(f"file://{tmp_path / 'store.yaml'}")
    file_store.put("token", "abc")
    assert file_store.get("token") == "abc"
    assert stat.S_IMODE(os.stat(tmp_path / "store.yaml").st_mode) == 0o600
    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - age: {age_key}\n")
    sops_store = open_store(f"sops://{tmp_path / 'tokens.sops.yaml'}")
    token = new_token()
    sops_store.put("token", token)
    sops_store.put("endpoint", "https://e")
    assert sops_store.get("token") == token
    assert leaks(token, (tmp_path / "tokens.sops.yaml").read_bytes()) == []
    data = joining_fleet()
    data["spec"]["tokens"]["store"] = f"sops://{tmp_path / 'tokens.sops.yaml'}"
    fleet = write_fleet(data)
    out = tmp_path / "output"
    assert run_cli("inject", fleet, "-o", out).exit_code == 0  # .sops.yaml above output
    assert base64.b64decode(decrypt(out / "clusters/edge-1/mc-join.sops.yaml")["data"]
                            ["token"]).decode() == token


def test_plain_mode(tmp_path: Path, write_fleet: WriteFleet,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    token = new_token()
    monkeypatch.setenv("K10_TOKEN", token)
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    data = joining_fleet()
    data["spec"]["tokens"] = {"mode": "plain", "store": "env://K10_TOKEN"}
    fleet = write_fleet(data)
    refused = run_cli("inject", fleet, "--plain-dir", repo / "secrets")
    assert refused.exit_code == 2 and "inside the Git work tree" in refused.output
    assert not (repo / "secrets").exists()
    plain = tmp_path / "outside" / "join"
    result = run_cli("inject", fleet, "--plain-dir", plain)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(plain).st_mode) == 0o700
    files = sorted(p.name for p in plain.iterdir())
    assert files == ["edge-1.yaml", "edge-2.yaml"]
    for name in files:
        assert stat.S_IMODE(os.stat(plain / name).st_mode) == 0o600
    config, secret = yaml.safe_load_all((plain / "edge-1.yaml").read_text())
    assert config["kind"] == "ConfigMap" and config["data"]["cluster-name"] == "edge-one"
    assert base64.b64decode(secret["data"]["token"]).decode() == token
    assert leaks(token, result.output) == []


def join_status(status: str, msg: str = "", name: str = "mc-join-status") -> dict[str, Any]:
    """The Secret K10 writes on a secondary (the test plays K10's part)."""
    data = {"status": base64.b64encode(status.encode()).decode()}
    if msg:
        data["msg"] = base64.b64encode(msg.encode()).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": "kasten-io"}, "data": data}


def token_only_fleet() -> dict[str, Any]:
    """Two token-joined secondaries, no kubeContexts (status must come from --from files)."""
    data = joining_fleet()
    data["spec"].pop("access", None)
    data["spec"]["secondaries"] = [s for s in data["spec"]["secondaries"]
                                   if s.get("joinWith") != "k10multicluster"]
    for cluster in [data["spec"]["primary"], *data["spec"]["secondaries"]]:
        cluster.pop("kubeContext", None)
    return data


def test_status_from_files_is_a_ci_gate(tmp_path: Path, write_fleet: WriteFleet) -> None:
    fleet = write_fleet(token_only_fleet())
    (tmp_path / "edge-1.json").write_text(json.dumps(join_status("Joined", "Joined primary-1")))
    (tmp_path / "edge-2.json").write_text(json.dumps(join_status("Failed", "token expired")))
    one = f"edge-1={tmp_path / 'edge-1.json'}"
    table = run_cli("status", fleet, "--from", one)
    assert table.exit_code == 1  # edge-2 cannot be asked: not joined as far as we know
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["CLUSTER", "STATUS", "MESSAGE"]
    assert lines[1].split()[:3] == ["edge-1", "Joined", "Joined"]
    assert lines[2].startswith("edge-2") and "no kubeContext" in lines[2]
    assert "1 secondary not joined: edge-2" in table.stderr
    failed = run_cli("status", fleet, "--from", one, "--from", f"edge-2={tmp_path / 'edge-2.json'}")
    assert failed.exit_code == 1 and "edge-2   Failed  token expired" in failed.stdout
    (tmp_path / "edge-2.json").write_text(json.dumps(join_status("joined")))
    both = run_cli("status", fleet, "--format", "json", "--from", one,
                   "--from", f"edge-2={tmp_path / 'edge-2.json'}")
    assert both.exit_code == 0, both.output
    assert json.loads(both.stdout)[0] == {"cluster": "edge-1", "status": "Joined",
                                          "joined": True, "message": "Joined primary-1",
                                          "source": str(tmp_path / "edge-1.json")}


def test_status_refuses_unknown_names_and_other_secrets(tmp_path: Path,
                                                        write_fleet: WriteFleet) -> None:
    fleet = write_fleet(token_only_fleet())
    (tmp_path / "s.json").write_text(json.dumps(join_status("Joined")))
    unknown = run_cli("status", fleet, "--from", f"edge-9={tmp_path / 's.json'}")
    assert unknown.exit_code == 2 and "'edge-9' is not a secondary of fleet demo" in unknown.output
    twice = run_cli("status", fleet, "--from", f"edge-1={tmp_path / 's.json'}",
                    "--from", f"edge-1={tmp_path / 's.json'}")
    assert twice.exit_code == 2 and "edge-1 given twice" in twice.output
    (tmp_path / "other.json").write_text(json.dumps(join_status("Joined", name="mc-join")))
    other = run_cli("status", fleet, "--from", f"edge-1={tmp_path / 'other.json'}")
    assert other.exit_code == 1
    assert f"{tmp_path / 'other.json'}:1:1: error: not the Secret mc-join-status" in other.output
    bad = run_cli("status", fleet, "--wait", "--timeout", "soon")
    assert bad.exit_code == 2 and "'soon' is not a duration" in bad.output


def test_status_wait_stops_at_the_timeout(tmp_path: Path, write_fleet: WriteFleet,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    data = token_only_fleet()
    data["spec"]["secondaries"][1]["kubeContext"] = "nowhere"  # asked, and fails each time
    fleet = write_fleet(data)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n"
                          "users: []\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    (tmp_path / "edge-1.json").write_text(json.dumps(join_status("Joined")))
    started = time.monotonic()
    result = run_cli("status", fleet, "--from", f"edge-1={tmp_path / 'edge-1.json'}",
                     "--wait", "--timeout", "3s", "--interval", "1s")
    took = time.monotonic() - started
    assert result.exit_code == 3, result.output
    assert 2.5 <= took < 20
    assert 'edge-2 (--context nowhere): error: context "nowhere" does not exist' in result.stderr


def test_sops_store_encrypts_the_token_whatever_the_repo_rules_say(tmp_path: Path,
                                                                     age_key: str) -> None:
    from generator.secrets.base import open_store

    (tmp_path / ".sops.yaml").write_text(
        f"creation_rules:\n  - age: {age_key}\n    encrypted_regex: ^(data|stringData)$\n")
    token = new_token()
    store = open_store(f"sops://{tmp_path / 'token.sops.yaml'}")
    store.put("token", token)
    assert leaks(token, (tmp_path / "token.sops.yaml").read_bytes()) == []
    assert store.get("token") == token


def test_recipients_follow_path_regex(tmp_path: Path, write_fleet: WriteFleet,
                                      monkeypatch: pytest.MonkeyPatch, age_key: str) -> None:
    import pyrage  # type: ignore[import-untyped]

    other = str(pyrage.x25519.Identity.generate().to_public())
    (tmp_path / ".sops.yaml").write_text(
        f"creation_rules:\n  - path_regex: ^secrets/prod/.*\n    age: {other}\n"
        f"  - path_regex: ^output/.*\n    age: {age_key}\n")
    monkeypatch.setenv("K10_TOKEN", new_token())
    data = joining_fleet()
    data["spec"]["tokens"]["store"] = "env://K10_TOKEN"
    fleet = write_fleet(data)
    out = tmp_path / "output"
    assert run_cli("inject", fleet, "-o", out).exit_code == 0
    encrypted = yaml.safe_load((out / "clusters/edge-1/mc-join.sops.yaml").read_text())
    assert [r["recipient"] for r in encrypted["sops"]["age"]] == [age_key]


def test_symlinked_plain_dir_into_git_is_refused(tmp_path: Path, write_fleet: WriteFleet,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    (repo / "dest").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (tmp_path / "link").symlink_to(repo / "dest")
    monkeypatch.setenv("K10_TOKEN", new_token())
    data = joining_fleet()
    data["spec"]["tokens"] = {"mode": "plain", "store": "env://K10_TOKEN"}
    result = run_cli("inject", write_fleet(data), "--plain-dir", tmp_path / "link")
    assert result.exit_code == 2 and "inside the Git work tree" in result.output
    assert list((repo / "dest").iterdir()) == []


def test_bad_options_are_usage_or_store_errors(fleet_repo: tuple[Path, Path, str],
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fleet, out, _ = fleet_repo
    missing = run_cli("status", fleet, "--from", f"edge-1={tmp_path / 'nope.json'}")
    assert missing.exit_code == 2 and "cannot read" in missing.output
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    binary = run_cli("token", "import", fleet, "--from", tmp_path / "binary.json")
    assert binary.exit_code == 2
    monkeypatch.setenv("K10FLEET_STORE_TIMEOUT", "soon")
    timeout = run_cli("inject", fleet, "-o", out)
    assert timeout.exit_code == 3 and "K10FLEET_STORE_TIMEOUT" in timeout.output
