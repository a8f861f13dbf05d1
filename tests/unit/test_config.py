"""Config: TOML + VICIDIAL_CDC_* env, unknown keys refused, secrets never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdc import config
from cdc.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


class TestLoad:
    """Sections, env overrides, URLs."""

    def test_defaults_without_file(self) -> None:
        """No file, no env: the documented defaults (loopback metrics, auto mode)."""
        cfg = config.load(None, env={})
        assert cfg.http.listen == "127.0.0.1:9108"
        assert cfg.mysql.database == "asterisk"
        assert cfg.delivery.mode == "auto"
        assert cfg.delivery.verify_tls is True
        assert cfg.reader.decoder == "fast"

    def test_file_and_env(self, tmp_path: Path) -> None:
        """Env wins over the file, typed by the field."""
        path = write(tmp_path, '[mysql]\nhost = "db1"\nport = 3307\n[reader]\nmatch_window_s = 12\n')
        cfg = config.load(
            path, env={"VICIDIAL_CDC_MYSQL_PORT": "3310", "VICIDIAL_CDC_DELIVERY_VERIFY_TLS": "no"}
        )
        assert (cfg.mysql.host, cfg.mysql.port) == ("db1", 3310)
        assert cfg.reader.match_window_s == 12.0
        assert cfg.delivery.verify_tls is False

    def test_urls(self, tmp_path: Path) -> None:
        """System URL and per-list values, DISABLED allowed."""
        path = write(
            tmp_path,
            '[urls]\nsystem = "https://crm.example/new?id=--A--lead_id--B--"\n'
            '[urls.lists]\n"101" = "https://other.example/x"\n"103" = "---DISABLED---"\n',
        )
        cfg = config.load(path, env={})
        assert cfg.urls.lists == {101: "https://other.example/x", 103: "---DISABLED---"}

    def test_endpoint_limits(self, tmp_path: Path) -> None:
        """Per-endpoint overrides inherit the defaults they do not set."""
        path = write(
            tmp_path,
            "[delivery]\nrate_per_s = 20\nmax_in_flight = 50\n"
            '[delivery.endpoints."crm.example:443"]\nconcurrency = 2\n',
        )
        cfg = config.load(path, env={})
        limits = cfg.delivery.limits_for("crm.example:443", "https://crm.example:443")
        assert (limits.concurrency, limits.rate_per_s) == (2, 20.0)
        assert cfg.delivery.max_in_flight == 50
        assert cfg.delivery.limits_for("other:80", "http://other:80").concurrency == 16


class TestErrors:
    """Mistakes are clear configuration errors."""

    @pytest.mark.parametrize(
        ("text", "match"),
        [
            ("[mysql]\nhots = 'x'\n", "unknown key"),
            ("[mysqll]\n", "unknown config section"),
            ("[mysql]\nport = 'x'\n", "must be int"),
            ("[urls.lists]\nabc = 'http://x'\n", "numeric list_id"),
            ("[delivery]\nmode = 'both'\n", "send, watch or auto"),
            ("[reader]\ndecoder = 'turbo'\n", "fast or library"),
            ("[delivery]\nrate_per_s = 0\n", "positive"),
            ("not toml = = 1", "not valid TOML"),
        ],
    )
    def test_bad_file(self, tmp_path: Path, text: str, match: str) -> None:
        """Each mistake names what is wrong."""
        with pytest.raises(ConfigError, match=match):
            config.load(write(tmp_path, text), env={})

    def test_bad_env(self) -> None:
        """An env value that does not parse names the variable."""
        with pytest.raises(ConfigError, match="VICIDIAL_CDC_MYSQL_PORT"):
            config.load(None, env={"VICIDIAL_CDC_MYSQL_PORT": "many"})


class TestSecrets:
    """The password comes from env or a file, never the TOML, and never prints."""

    def test_password_not_in_toml(self, tmp_path: Path) -> None:
        """A password key in the file is refused with the two ways that work."""
        with pytest.raises(ConfigError, match="password_file"):
            config.load(write(tmp_path, '[mysql]\npassword = "hunter2"\n'), env={})

    def test_password_file_and_env(self, tmp_path: Path) -> None:
        """password_file is read (trailing newline dropped); the env variable wins."""
        secret = tmp_path / "pw"
        secret.write_text("s3cr3t-value\n")
        path = write(tmp_path, f'[mysql]\npassword_file = "{secret}"\n')
        assert config.load(path, env={}).mysql.password.value == "s3cr3t-value"
        cfg = config.load(path, env={"VICIDIAL_CDC_MYSQL_PASSWORD": "from-env"})
        assert cfg.mysql.password.value == "from-env"
        assert "from-env" not in repr(cfg) and "from-env" not in str(cfg)

    def test_missing_password_file(self, tmp_path: Path) -> None:
        """An unreadable password file is a clear error."""
        path = write(tmp_path, f'[mysql]\npassword_file = "{tmp_path / "nope"}"\n')
        with pytest.raises(ConfigError, match="password_file"):
            config.load(path, env={})
