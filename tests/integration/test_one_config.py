"""The service and the operator commands read one config the same way, as deployed.

The service is started exactly as a systemd unit of deploy/systemd starts it: its
``ExecStart`` arguments and every ``Environment=``/``LoadCredential=`` line it has, with
/etc/vicidial-cdc and /var/lib/vicidial-cdc moved under the test's directory. Its config
is deploy/config.example.toml (the template unit: plus what the unit's header tells the
admin to put in each NAME.toml), pointed at a private MariaDB and a loopback receiver.
The operator commands run as docs/operations.md shows them: ``-c`` that config file,
from another working directory, with no VICIDIAL_CDC_* environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.host import REPO, free_port
from support.mariadb import grants_user

from cdc import cli
from cdc.testing.mariadb import PrivateMariaDB
from cdc.testing.receiver import Receiver
from cdc.testing.simulate import Vicidial

WAIT_S = 60.0
UNITS = REPO / "deploy" / "systemd"
CDC_USER, CDC_PASSWORD = "cdc_one_config", "one-Config-Password-1"
INSTANCE = "dialer1"


class _Deploy:
    """The deploy files' absolute paths, moved under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, text: str) -> str:
        for prefix in ("/etc/vicidial-cdc", "/var/lib/vicidial-cdc"):
            text = text.replace(prefix, f"{self.root}{prefix}")
        return text


def _unit_service(name: str) -> dict[str, list[str]]:
    """The [Service] keys of a unit (a key may repeat), %i expanded to the instance."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in (UNITS / name).read_text("utf-8").splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value.replace("%i", INSTANCE))
    return out


def _header_settings(name: str) -> dict[str, str]:
    """``section.key = "value"`` lines in the unit's header comment (what each NAME.toml needs)."""
    text = (UNITS / name).read_text("utf-8")
    found = re.findall(r'^#.*?\b(\w+)\.(\w+) = "([^"]*)"', text, flags=re.MULTILINE)
    return {f"{section}.{key}": value.replace("NAME", INSTANCE) for section, key, value in found}


def _toml(doc: dict[str, dict[str, Any]], prefix: str = "") -> str:
    """A TOML document of tables of scalars and sub-tables (``[delivery.retry]``), enough for this config."""
    lines: list[str] = []
    for section, table in doc.items():
        lines.append(f"[{prefix}{section}]")
        subtables = {key: value for key, value in table.items() if isinstance(value, dict)}
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items() if key not in subtables]
        if subtables:
            lines.append(_toml(subtables, f"{prefix}{section}.").rstrip("\n"))
    return "\n".join(lines) + "\n"


def _deployed_config(
    unit: str, deploy: _Deploy, server: PrivateMariaDB, database: str, http_port: int
) -> Path:
    """deploy/config.example.toml as installed for ``unit``, aimed at the test's servers."""
    raw = tomllib.loads((REPO / "deploy" / "config.example.toml").read_text("utf-8"))
    raw.pop("urls")  # the example's crm.example.com: VICIdial's own URL setting instead
    raw["delivery"].pop("endpoints")
    for dotted, value in _header_settings(unit).items():
        section, key = dotted.split(".")
        raw[section][key] = value
    raw["mysql"].update(host=server.host, port=server.port, user=CDC_USER, database=database)
    raw["reader"]["check_at_start"] = False
    raw["http"]["listen"] = f"127.0.0.1:{http_port}"
    raw["delivery"]["mode"] = "send"  # the simulated VICIdial does not send itself
    raw["log"]["level"] = "WARNING"
    for table in raw.values():
        for key, value in table.items():
            if isinstance(value, str):
                table[key] = deploy.path(value)
    exec_start = shlex.split(_unit_service(unit)["ExecStart"][-1])
    config = Path(exec_start[exec_start.index("--config") + 1])
    target = Path(deploy.path(str(config)))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(_toml(raw), "utf-8")
    password_files = [Path(raw["mysql"]["password_file"])]
    password_files += [
        Path(deploy.path(c.partition(":")[2])) for c in _unit_service(unit).get("LoadCredential", [])
    ]
    for password_file in password_files:
        password_file.parent.mkdir(parents=True, exist_ok=True)
        password_file.write_text(CDC_PASSWORD + "\n", "utf-8")
    return target


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("VICIDIAL_CDC_")}


def _service_command(unit: str, deploy: _Deploy) -> tuple[list[str], dict[str, str]]:
    """ExecStart and the environment systemd would give the service (credentials included)."""
    service = _unit_service(unit)
    argv = shlex.split(deploy.path(service["ExecStart"][-1]))
    assert argv[0].endswith("/bin/vicidial-cdc")
    argv = [sys.executable, "-m", "cdc.cli", *argv[1:]]
    credentials = deploy.root / "credentials"
    credentials.mkdir()
    for line in service.get("LoadCredential", []):
        name, _, source = line.partition(":")
        shutil.copy(deploy.path(source), credentials / name)
    env = _clean_env()
    for line in service.get("Environment", []):
        key, _, value = line.partition("=")
        env[key] = deploy.path(value.replace("%d", str(credentials)))
    state_dir = Path(deploy.path(f"/var/lib/{service['StateDirectory'][-1]}"))
    state_dir.mkdir(parents=True, mode=0o700)
    return argv, env


def _spawn(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as stderr:  # the child keeps its own descriptor
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr, env=env, cwd=cwd)


def _operator(config: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cdc.cli", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_clean_env(),
        timeout=120,
        check=False,
    )


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@pytest.fixture
def cdc_account(mariadb: PrivateMariaDB, vicidial_db: str) -> Iterator[None]:
    with grants_user(mariadb, vicidial_db, CDC_USER, CDC_PASSWORD):
        yield


class TestServiceAndOperatorAgree:
    """As deployed, `status`, `dlq` and `replay -c FILE` act on the running service's state."""

    @pytest.mark.mariadb
    @pytest.mark.parametrize("unit", ["vicidial-cdc.service", "vicidial-cdc@.service"])
    async def test_same_state_file(
        self,
        unit: str,
        mariadb: PrivateMariaDB,
        vicidial_db: str,
        vicidial: Vicidial,
        cdc_account: None,
        receiver: Receiver,
        tmp_path: Path,
    ) -> None:
        """status sees the service's checkpoint and outbox; replay --force reaches its sender."""
        vicidial.add_list(101, "L", "C", "")
        vicidial.set_system_url(f"{receiver.url}/one?id=--A--lead_id--B--")
        deploy = _Deploy(tmp_path / "root")
        http_port = free_port()
        config = _deployed_config(unit, deploy, mariadb, vicidial_db, http_port)
        argv, env = _service_command(unit, deploy)
        service_cwd, operator_cwd = tmp_path / "service-cwd", tmp_path / "operator-cwd"
        service_cwd.mkdir()
        operator_cwd.mkdir()
        log = tmp_path / "service.log"
        proc = _spawn(argv, env, service_cwd, log)
        try:
            deadline = time.monotonic() + WAIT_S
            while not await asyncio.to_thread(_ready, http_port):
                assert proc.poll() is None and time.monotonic() < deadline, f"service did not start: {log}"
                await asyncio.sleep(0.2)
            lead = await asyncio.to_thread(vicidial.add_lead, phone_number="3125550900", list_id=101)
            await receiver.wait_for(1, WAIT_S)

            done = await asyncio.to_thread(_operator, config, operator_cwd, "status", "--json")
            assert done.returncode == 0, done.stderr
            doc = json.loads(done.stdout)
            service_files = sorted(deploy.root.rglob("*.db"))
            assert service_files == [Path(doc["state_path"])], "status opened another file"
            assert doc["checkpoint"] is not None
            assert doc["totals"]["delivered"] == 1
            assert f"config={config} state_file={doc['state_path']} env_overrides=-" in done.stderr

            done = await asyncio.to_thread(_operator, config, operator_cwd, "dlq", "list", "--json")
            assert done.returncode == 0 and json.loads(done.stdout)["total_dead"] == 0, done.stderr

            done = await asyncio.to_thread(
                _operator, config, operator_cwd, "replay", "--lead-id", str(lead), "--force"
            )
            assert done.returncode == 0, done.stderr
            assert "sent again: 1" in done.stdout
            await receiver.wait_for(2, WAIT_S)  # the running service's sender sent it again
            assert [r.target for r in receiver.requests] == [f"/one?id={lead}"] * 2
            assert sorted(deploy.root.rglob("*.db")) == service_files
            assert proc.poll() is None
        finally:
            proc.terminate()
            await asyncio.to_thread(proc.wait, 60)


class TestMissingStateFile:
    """An operator command never creates a state file by accident."""

    @pytest.mark.parametrize(
        "argv",
        [
            ["replay", "--lead-id", "1"],
            ["replay", "--since", "1h", "--force"],
            ["status"],
            ["dlq", "list"],
            ["dlq", "retry", "--all"],
            ["dlq", "purge", "--all", "--yes"],
        ],
    )
    def test_refused_with_exit_2(
        self, argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Exit 2, the message names the missing path and the fix, and nothing is created."""
        state = tmp_path / "var" / "state.db"
        config = tmp_path / "c.toml"
        # port 9 (discard): a command that reached MariaDB first would fail differently.
        config.write_text(
            f'[mysql]\nhost = "127.0.0.1"\nport = 9\nconnect_timeout_s = 1.0\n[state]\npath = "{state}"\n',
            "utf-8",
        )
        assert cli.main([*argv, "-c", str(config)]) == 2
        err = capsys.readouterr().err
        assert f"state_file={state}" in err  # which file it looked for, before anything else
        assert f"no state file at {state}" in err and "--config" in err and "--create-state" in err
        assert not state.exists() and not state.parent.exists()

    def test_env_override_is_named(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A VICIDIAL_CDC_* variable the service may not have is shown by name (never its value)."""
        config = tmp_path / "c.toml"
        config.write_text(f'[state]\npath = "{tmp_path / "from-file.db"}"\n', "utf-8")
        monkeypatch.setenv("VICIDIAL_CDC_STATE_PATH", str(tmp_path / "from-env.db"))
        monkeypatch.setenv("VICIDIAL_CDC_MYSQL_PASSWORD", "sentinel-Secret-9")
        assert cli.main(["status", "-c", str(config)]) == 2
        err = capsys.readouterr().err
        assert f"state_file={tmp_path / 'from-env.db'}" in err
        assert "env_overrides=VICIDIAL_CDC_MYSQL_PASSWORD,VICIDIAL_CDC_STATE_PATH" in err
        assert "sentinel-Secret-9" not in err
