"""Deployment files: systemd units, Dockerfile, compose stack, Prometheus, Alertmanager,
Grafana provisioning, the MariaDB snippet, the grants and the example config.

No Docker engine runs here: the Dockerfile is parsed with BuildKit's own parser (the
``dockerfile`` package) and linted with hadolint; the compose file is validated against
the Compose specification's JSON schema (vendored by check-jsonschema) and its
references are checked. Nothing is built or run.
"""

from __future__ import annotations

import configparser
import contextlib
import dataclasses
import re
import shutil
import subprocess
import sys
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dockerfile
import pymysql
import pytest
import yaml
from support.host import REPO
from support.mariadb import grants_user
from support.opstools import OpsTools, ensure_ops_tools

from cdc import config as cdc_config
from cdc.testing.mariadb import PrivateMariaDB

DEPLOY = REPO / "deploy"
UNITS = DEPLOY / "systemd"
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def tools() -> OpsTools:
    return ensure_ops_tools()


def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values in order]}} (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text("utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not key=value: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _installable_copy(unit: Path, directory: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's entry point (verify needs it)."""
    text = unit.read_text("utf-8").replace(
        "/opt/vicidial-cdc/bin/vicidial-cdc", str(VENV_BIN / "vicidial-cdc")
    )
    copy = directory / unit.name
    copy.write_text(text, "utf-8")
    return copy


class TestSystemdUnits:
    """Hardened units that restart on failure but never loop on exit 2 or 3."""

    @pytest.mark.parametrize("name", ["vicidial-cdc.service", "vicidial-cdc@.service"])
    def test_policy(self, name: str) -> None:
        """Own system user, state dir, sandbox, restart policy, credentials instead of secrets."""
        unit = _unit(UNITS / name)
        service = {k: v[-1] for k, v in unit["Service"].items()}
        assert service["Restart"] == "on-failure"
        assert set(service["RestartPreventExitStatus"].split()) >= {"2", "3"}
        assert (service["User"], service["Group"]) == ("vicidial-cdc", "vicidial-cdc")
        assert service["StateDirectory"].startswith("vicidial-cdc")
        assert service["ProtectSystem"] == "strict"
        for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "RestrictSUIDSGID"):
            assert service[key] == "yes", key
        assert service["CapabilityBoundingSet"] == ""
        assert "password" not in service["ExecStart"].lower()
        # The config file is the whole configuration: nothing the operator commands
        # (run with the same --config) would not see.
        assert re.search(r" run --config /etc/vicidial-cdc/\S+\.toml$", service["ExecStart"])
        assert "Environment" not in unit["Service"] and "EnvironmentFile" not in unit["Service"]
        assert "LoadCredential" not in unit["Service"]
        timeout = int(service["TimeoutStopSec"].rstrip("s"))
        assert timeout > cdc_config.DeliveryConfig().shutdown_grace_s

    def test_template_separates_instances(self) -> None:
        """vicidial-cdc@NAME: own config, password, state directory and log identifier."""
        service = {k: v[-1] for k, v in _unit(UNITS / "vicidial-cdc@.service")["Service"].items()}
        assert "/etc/vicidial-cdc/%i.toml" in service["ExecStart"]
        assert service["StateDirectory"] == "vicidial-cdc/%i"
        assert "%i" in service["SyslogIdentifier"]
        # What each NAME.toml must say, since no Environment= says it for the service only.
        header = (UNITS / "vicidial-cdc@.service").read_text("utf-8")
        assert 'state.path = "/var/lib/vicidial-cdc/NAME/state.db"' in header
        assert 'mysql.password_file = "/etc/vicidial-cdc/NAME.password"' in header

    def test_example_config_fits_the_unit(self) -> None:
        """The example config (installed as the unit's --config) keeps its state in the
        unit's StateDirectory and reads the password from a file in its ConfigurationDirectory."""
        service = {k: v[-1] for k, v in _unit(UNITS / "vicidial-cdc.service")["Service"].items()}
        raw = tomllib.loads((DEPLOY / "config.example.toml").read_text("utf-8"))
        assert Path(raw["state"]["path"]).parent == Path("/var/lib") / service["StateDirectory"]
        assert Path(raw["mysql"]["password_file"]).parent == Path("/etc") / service["ConfigurationDirectory"]

    @pytest.mark.parametrize(
        ("name", "instance"), [("vicidial-cdc.service", ""), ("vicidial-cdc@.service", "dialer1")]
    )
    def test_systemd_analyze_verify(self, name: str, instance: str, tmp_path: Path) -> None:
        """`systemd-analyze verify` reports nothing (it only warns on unknown keys, so any output fails)."""
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            pytest.skip("systemd-analyze is not installed: test_policy parsed the units")
        copy = _installable_copy(UNITS / name, tmp_path)
        target = copy.with_name(copy.name.replace("@", f"@{instance}")) if instance else copy
        done = subprocess.run(
            [analyze, "verify", "--man=no", str(target)],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
        )
        output = (done.stdout + done.stderr).strip()
        assert done.returncode == 0 and output == "", output

    @pytest.mark.parametrize("name", ["vicidial-cdc.service", "vicidial-cdc@.service"])
    def test_exposure_score(self, name: str, tmp_path: Path) -> None:
        """`systemd-analyze security --offline` rates the sandbox at most 2.0 ("OK")."""
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            pytest.skip("systemd-analyze is not installed")
        copy = _installable_copy(UNITS / name, tmp_path)
        done = subprocess.run(
            [analyze, "security", "--offline=yes", "--no-pager", str(copy)],
            capture_output=True,
            text=True,
            check=False,
        )
        match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout + done.stderr)
        assert match, done.stdout + done.stderr
        assert float(match.group(1)) <= 2.0, done.stdout


@pytest.fixture(scope="module")
def instructions() -> tuple[dockerfile.Command, ...]:
    parsed: tuple[dockerfile.Command, ...] = dockerfile.parse_file(str(DEPLOY / "Dockerfile"))
    return parsed


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text("utf-8"))
    return data


class TestDockerfile:
    """Multi-stage, small base, non-root, health check, graceful stop."""

    def test_parses_with_buildkits_parser(self, instructions: tuple[dockerfile.Command, ...]) -> None:
        """Two stages from a slim Python 3.11 image; the last one runs as a non-root uid."""
        froms = [i for i in instructions if i.cmd == "FROM"]
        assert len(froms) == 2
        args = {
            i.value[0].split("=", 1)[0]: i.value[0].split("=", 1)[1] for i in instructions if i.cmd == "ARG"
        }
        assert re.fullmatch(r"python:3\.11-slim-\w+", args["PYTHON_IMAGE"])
        final = instructions[[n for n, i in enumerate(instructions) if i.cmd == "FROM"][-1] :]
        users = [i.value[0] for i in final if i.cmd == "USER"]
        assert users and users[-1].split(":")[0] not in ("root", "0")
        cmds = {i.cmd for i in final}
        assert {"HEALTHCHECK", "STOPSIGNAL", "ENTRYPOINT", "EXPOSE", "VOLUME"} <= cmds
        entry = next(i for i in final if i.cmd == "ENTRYPOINT")
        assert entry.json, "ENTRYPOINT must be exec form so SIGTERM reaches the streamer"
        assert next(i for i in final if i.cmd == "EXPOSE").value == ("9108",)
        assert not [i for i in instructions if i.cmd == "ADD"], "use COPY, never ADD"

    def test_copied_sources_exist(self, instructions: tuple[dockerfile.Command, ...]) -> None:
        """What the build stage COPYs from the context is in the repository and not ignored."""
        ignore = (DEPLOY / "Dockerfile.dockerignore").read_text("utf-8").split()
        allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
        for inst in instructions:
            if inst.cmd == "COPY" and not any(f.startswith("--from") for f in inst.flags):
                for source in inst.value[:-1]:
                    assert (REPO / source).exists(), source
                    assert source.rstrip("/") in allowed, f"{source} is excluded by Dockerfile.dockerignore"

    def test_hadolint(self) -> None:
        """hadolint (the Dockerfile linter) finds nothing."""
        hadolint = shutil.which("hadolint") or str(VENV_BIN / "hadolint")
        done = subprocess.run(
            [hadolint, "--no-color", str(DEPLOY / "Dockerfile")], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr


class TestCompose:
    """The compose stack is valid Compose and its pieces fit together."""

    def test_compose_spec_schema(self) -> None:
        """check-jsonschema validates it against the Compose specification's schema."""
        checker = shutil.which("check-jsonschema") or str(VENV_BIN / "check-jsonschema")
        done = subprocess.run(
            [checker, "--builtin-schema", "vendor.compose-spec", str(DEPLOY / "docker-compose.yml")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def test_services(self, compose: dict[str, Any]) -> None:
        """MariaDB, the streamer, Prometheus, Alertmanager and Grafana, ports on loopback only."""
        services = compose["services"]
        assert {"mariadb", "vicidial-cdc", "prometheus", "alertmanager", "grafana"} <= set(services)
        for name, svc in services.items():
            for port in svc.get("ports", []):
                assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        assert services["vicidial-cdc"]["image"] == services["vicidial-init"]["image"]
        assert services["vicidial-init"]["build"]["dockerfile"] == "deploy/Dockerfile"

    def test_bind_mounts_exist(self, compose: dict[str, Any]) -> None:
        """Every host path a service mounts is in the repository."""
        for name, svc in compose["services"].items():
            for volume in svc.get("volumes", []):
                source = str(volume).split(":", 1)[0]
                if source.startswith("."):
                    assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"

    def test_pieces_fit(self, compose: dict[str, Any]) -> None:
        """Binlog settings, rules, the scrape target and Grafana provisioning are wired up."""
        services = compose["services"]
        mounts = {svc: [str(v) for v in s.get("volumes", [])] for svc, s in services.items()}
        assert any(
            v.startswith("./mariadb/60-vicidial-cdc.cnf:/etc/mysql/conf.d/") for v in mounts["mariadb"]
        )
        assert "./prometheus:/etc/prometheus:ro" in mounts["prometheus"]
        assert any(
            v.startswith("../grafana/provisioning:/etc/grafana/provisioning") for v in mounts["grafana"]
        )
        dashboards = yaml.safe_load((REPO / "grafana/provisioning/dashboards/vicidial-cdc.yml").read_text())
        path = dashboards["providers"][0]["options"]["path"]
        assert any(v.startswith(f"../grafana/dashboards:{path}") for v in mounts["grafana"])
        home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        assert home == f"{path}/vicidial-cdc.json"
        datasources = yaml.safe_load((REPO / "grafana/provisioning/datasources/prometheus.yml").read_text())
        assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
        prom = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text("utf-8"))
        job = next(j for j in prom["scrape_configs"] if j["job_name"] == "vicidial-cdc")
        targets = job["static_configs"][0]["targets"]
        streamer = cdc_config.load(
            DEPLOY / "compose/vicidial-cdc.toml", env={"VICIDIAL_CDC_MYSQL_PASSWORD": "x"}
        )
        assert targets == [f"vicidial-cdc:{streamer.http.host_port()[1]}"]
        assert streamer.http.host_port()[0] == "0.0.0.0"
        alertmanager = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
        assert alertmanager == ["alertmanager:9093"]

    def test_streamer_reads_only_its_config_file(self, compose: dict[str, Any]) -> None:
        """The streamer runs with --config (the mounted TOML) and no VICIDIAL_CDC_* env; the
        password is the secret file the TOML names and the account set-up reads."""
        services = compose["services"]
        streamer = services["vicidial-cdc"]
        command = streamer["command"]
        config_path = command[command.index("--config") + 1]
        mount = next(str(v) for v in streamer["volumes"] if str(v).split(":")[1] == config_path)
        toml = DEPLOY / mount.split(":")[0]
        assert not [k for k in streamer.get("environment", {}) if str(k).startswith("VICIDIAL_CDC_")]
        raw = tomllib.loads(toml.read_text("utf-8"))
        (secret,) = streamer["secrets"]
        assert raw["mysql"]["password_file"] == f"/run/secrets/{secret}"
        assert secret in services["vicidial-init"]["secrets"]
        assert f'Path("/run/secrets/{secret}")' in (DEPLOY / "compose/init_vicidial.py").read_text("utf-8")
        default = re.fullmatch(r"\$\{\w+:-(.+)\}", compose["secrets"][secret]["file"])
        assert default, "the secret file has a demo default"
        password = (DEPLOY / default.group(1)).read_text("utf-8")
        assert password.strip() and password.count("\n") == 1
        assert raw["state"]["path"].startswith("/var/lib/vicidial-cdc/")  # the state volume


class TestPrometheusAndAlertmanager:
    """promtool and amtool accept the example configs; routing goes where it says."""

    def test_prometheus_config(self, tools: OpsTools) -> None:
        """`promtool check config` (rule files included)."""
        done = subprocess.run(
            [tools.promtool, "check", "config", str(DEPLOY / "prometheus/prometheus.yml")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def test_alertmanager_config(self, tools: OpsTools) -> None:
        """`amtool check-config` accepts alertmanager.yml."""
        done = subprocess.run(
            [tools.amtool, "check-config", str(DEPLOY / "alertmanager/alertmanager.yml")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    @pytest.mark.parametrize(
        ("labels", "receiver"),
        [
            (["alertname=VicidialCdcDown", "severity=critical"], "oncall-pager"),
            (["alertname=VicidialCdcDeliveryFailureRatioHigh", "severity=critical"], "oncall-pager"),
            (["alertname=VicidialCdcBinlogLagHigh", "severity=warning"], "team-chat"),
            (["alertname=VicidialCdcDeadLetters", "severity=warning"], "team-chat"),
        ],
    )
    def test_routes(self, tools: OpsTools, labels: list[str], receiver: str) -> None:
        """Critical alerts page the on-call receiver, warnings go to the team channel."""
        done = subprocess.run(
            [
                tools.amtool,
                "config",
                "routes",
                "test",
                f"--config.file={DEPLOY / 'alertmanager/alertmanager.yml'}",
                *labels,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip() == receiver


class TestMariaDBSnippet:
    """The MariaDB config snippet sets what the streamer needs, and mariadbd accepts it."""

    def test_settings(self) -> None:
        """ROW format, full row images and metadata, a retention, a server id."""
        parser = configparser.ConfigParser(allow_no_value=True)
        parser.read(DEPLOY / "mariadb/60-vicidial-cdc.cnf")
        section = parser["mariadb"]
        assert section["log_bin"]
        assert section["binlog_format"] == "ROW"
        assert section["binlog_row_image"] == "FULL"
        assert section["binlog_row_metadata"] == "FULL"
        assert int(section["expire_logs_days"]) >= 1
        assert int(section["server_id"]) != cdc_config.DEFAULT_SERVER_ID

    def test_mariadbd_accepts_it(self) -> None:
        """`mariadbd --defaults-file=... --help --verbose` knows every option and applies it."""
        mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        if not Path(mariadbd).exists():
            pytest.skip("mariadbd is not installed")
        done = subprocess.run(
            [mariadbd, f"--defaults-file={DEPLOY / 'mariadb/60-vicidial-cdc.cnf'}", "--help", "--verbose"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        values = dict(re.findall(r"^([a-z0-9-]+)\s+(\S+)$", done.stdout, flags=re.MULTILINE))
        assert values["binlog-format"] == "ROW"
        assert values["binlog-row-metadata"] == "FULL"
        assert values["log-bin"] == "mysql-bin"


class TestGrants:
    """grants.sql runs on a real MariaDB: it reads VICIdial's database (later lists too), nothing else."""

    def test_reads_the_database_writes_nothing(self, mariadb: PrivateMariaDB, vicidial_db: str) -> None:
        """Settings, a custom table created after the grants, binlog positions; no write, no mysql.*."""
        with grants_user(mariadb, vicidial_db, "cdc_grants_test", "pw-grants-test"):
            with contextlib.closing(mariadb.connect(db=vicidial_db)) as root, root.cursor() as cur:
                cur.execute("CREATE TABLE custom_4242 (lead_id INT UNSIGNED PRIMARY KEY, color VARCHAR(9))")
            conn = pymysql.connect(
                host=mariadb.host, port=mariadb.port, user="cdc_grants_test", password="pw-grants-test"
            )
            with contextlib.closing(conn), conn.cursor() as cur:
                cur.execute(f"SELECT COUNT(*) FROM `{vicidial_db}`.system_settings")
                cur.execute(f"SELECT COUNT(*) FROM `{vicidial_db}`.custom_4242")
                cur.execute("SHOW MASTER STATUS")
                assert cur.fetchone() is not None
                cur.execute("SHOW BINARY LOGS")
                assert cur.fetchall()
                with pytest.raises(pymysql.err.OperationalError):
                    cur.execute(f"UPDATE `{vicidial_db}`.vicidial_list SET status='X' WHERE lead_id=0")
                with pytest.raises(pymysql.err.OperationalError):
                    cur.execute("SELECT COUNT(*) FROM mysql.global_priv")


def _config_keys(cls: type[Any]) -> set[str]:
    hints = typing.get_type_hints(cls)
    keys = set()
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if hint is cdc_config.Secret or dataclasses.is_dataclass(hint) or typing.get_origin(hint) is Mapping:
            continue
        keys.add(f.name)
    return keys


class TestExampleConfig:
    """deploy/config.example.toml documents every key of cdc/config.py and loads."""

    def test_loads(self) -> None:
        """cdc.config.load accepts it (password from the environment)."""
        loaded = cdc_config.load(DEPLOY / "config.example.toml", env={"VICIDIAL_CDC_MYSQL_PASSWORD": "x"})
        assert loaded.delivery.endpoints

    def test_every_key_is_present(self) -> None:
        """Each setting of each section appears, so the example cannot fall behind the code."""
        raw = tomllib.loads((DEPLOY / "config.example.toml").read_text("utf-8"))
        sections: dict[str, set[str]] = {
            f.name: _config_keys(typing.get_type_hints(cdc_config.Config)[f.name])
            for f in dataclasses.fields(cdc_config.Config)
        }
        sections["delivery"] |= _config_keys(cdc_config.EndpointLimits) | {"endpoints", "retry"}
        sections["urls"] = {"system", "lists"}
        for section, keys in sections.items():
            assert section in raw, f"[{section}] missing"
            missing = keys - set(raw[section])
            assert not missing, f"[{section}] lacks {sorted(missing)}"
        example_endpoint = next(iter(raw["delivery"]["endpoints"].values()))
        assert _config_keys(cdc_config.EndpointLimits) <= set(example_endpoint)
        missing = _config_keys(cdc_config.RetryPolicy) - set(raw["delivery"]["retry"])
        assert not missing, f"[delivery.retry] lacks {sorted(missing)}"

    def test_values_are_the_defaults(self) -> None:
        """The example's [delivery.retry] values are RetryPolicy's defaults, the only ones."""
        loaded = cdc_config.load(DEPLOY / "config.example.toml", env={"VICIDIAL_CDC_MYSQL_PASSWORD": "x"})
        assert loaded.delivery.retry == cdc_config.RetryPolicy()
