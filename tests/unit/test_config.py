"""Config: TOML + VICIDIAL_CDC_* env, unknown keys refused, secrets never printed."""

from __future__ import annotations

import logging
import re
import ssl
from pathlib import Path

import pytest

from cdc import config
from cdc.errors import ConfigError
from cdc.records import Position
from cdc.testing.mariadb import TlsFiles, make_tls_files


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
            ("[state]\nbusy_limit_s = -1\n", "busy_limit_s must be >= 0"),
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


class TestChoices:
    """Closed choices (delivery.mode, reader.decoder, mysql.ssl_mode, log.level, log.format) are enums."""

    def test_defaults_are_members(self) -> None:
        """An empty config gives the enum members, not bare strings."""
        cfg = config.load(None, env={})
        assert cfg.delivery.mode is config.DeliveryMode.AUTO
        assert cfg.reader.decoder is config.Decoder.FAST
        assert (cfg.log.level, cfg.log.format) == (config.LogLevel.INFO, config.LogFormat.JSON)

    def test_file_and_env_values_become_members(self, tmp_path: Path) -> None:
        """A value from the file or the environment is parsed into its member; log.level in any case."""
        path = write(tmp_path, "[delivery]\nmode = 'watch'\n[log]\nlevel = 'debug'\nformat = 'text'\n")
        cfg = config.load(path, env={"VICIDIAL_CDC_READER_DECODER": "library"})
        assert cfg.delivery.mode is config.DeliveryMode.WATCH
        assert cfg.reader.decoder is config.Decoder.LIBRARY
        assert (cfg.log.level, cfg.log.format) == (config.LogLevel.DEBUG, config.LogFormat.TEXT)

    @pytest.mark.parametrize(
        ("variable", "value", "message"),
        [
            ("VICIDIAL_CDC_DELIVERY_MODE", "both", "delivery.mode must be send, watch or auto, got 'both'"),
            ("VICIDIAL_CDC_READER_DECODER", "FAST", "reader.decoder must be fast or library, got 'FAST'"),
        ],
    )
    def test_bad_env_choice(self, variable: str, value: str, message: str) -> None:
        """A bad value from the environment names the variable, the key and the choices."""
        with pytest.raises(ConfigError, match=variable) as caught:
            config.load(None, env={variable: value})
        assert message in str(caught.value)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [("", None), ("VERIFY_CA", config.SslMode.VERIFY_CA), ("required", config.SslMode.REQUIRED)],
    )
    def test_ssl_mode(self, tmp_path: Path, text: str, expected: config.SslMode | None) -> None:
        """mysql.ssl_mode is an SslMode in either case; empty is unset (the TLS files decide)."""
        path = write(tmp_path, f"[mysql]\nssl_mode = '{text}'\n")
        assert config.load(path, env={}).mysql.ssl_mode is expected
        assert config.load(None, env={"VICIDIAL_CDC_MYSQL_SSL_MODE": text}).mysql.ssl_mode is expected
        assert config.MysqlConfig(ssl_mode=text).ssl_mode is expected

    def test_not_a_string(self, tmp_path: Path) -> None:
        """A choice written as another TOML type is a type error."""
        with pytest.raises(ConfigError, match=r"delivery\.mode must be str, got int"):
            config.load(write(tmp_path, "[delivery]\nmode = 1\n"), env={})

    def test_strings_in_code_become_members(self) -> None:
        """A section built in code with a plain string holds the member, so ``is`` compares hold."""
        assert config.DeliveryConfig(mode="send").mode is config.DeliveryMode.SEND
        assert config.ReaderConfig(decoder="library").decoder is config.Decoder.LIBRARY
        assert config.DECODERS == (config.Decoder.FAST, config.Decoder.LIBRARY)


class TestRetryTable:
    """[delivery.retry]: one retry policy, whose defaults are RetryPolicy's; the old flat keys are refused."""

    def test_table(self, tmp_path: Path) -> None:
        """Keys given in [delivery.retry] replace the defaults; the others keep RetryPolicy's."""
        text = (
            "[delivery]\nmax_in_flight = 10\n"
            "[delivery.retry]\nbase_s = 1\nmax_attempts = 3\ndead_on_4xx = false\n"
        )
        retry = config.load(write(tmp_path, text), env={}).delivery.retry
        default = config.RetryPolicy()
        assert (retry.base_s, retry.max_attempts, retry.dead_on_4xx) == (1.0, 3, False)
        assert (retry.factor, retry.cap_s) == (default.factor, default.cap_s)
        assert retry.max_age_s == default.max_age_s

    def test_env(self) -> None:
        """Each key has its variable, VICIDIAL_CDC_DELIVERY_RETRY_<KEY>, which wins over the file."""
        env = {"VICIDIAL_CDC_DELIVERY_RETRY_MAX_AGE_S": "60", "VICIDIAL_CDC_DELIVERY_RETRY_DEAD_ON_4XX": "no"}
        retry = config.load(None, env=env).delivery.retry
        assert (retry.max_age_s, retry.dead_on_4xx) == (60.0, False)

    @pytest.mark.parametrize(
        ("old", "new"),
        [
            ("retry_base_s = 5", "delivery.retry.base_s"),
            ("retry_factor = 6", "delivery.retry.factor"),
            ("retry_cap_s = 7200", "delivery.retry.cap_s"),
            ("max_attempts = 20", "delivery.retry.max_attempts"),
            ("max_age_s = 86400", "delivery.retry.max_age_s"),
            ("dead_on_4xx = true", "delivery.retry.dead_on_4xx"),
        ],
    )
    def test_old_flat_key_names_the_new_one(self, tmp_path: Path, old: str, new: str) -> None:
        """A retry key left flat in [delivery] (as before) is an error naming its new key, never ignored."""
        key = old.partition(" ")[0]
        with pytest.raises(ConfigError, match=rf"delivery\.{key} is now {re.escape(new)}") as caught:
            config.load(write(tmp_path, f"[delivery]\n{old}\n"), env={})
        assert "[delivery.retry]" in str(caught.value)

    @pytest.mark.parametrize(
        ("old", "new"),
        [
            ("VICIDIAL_CDC_DELIVERY_MAX_ATTEMPTS", "VICIDIAL_CDC_DELIVERY_RETRY_MAX_ATTEMPTS"),
            ("VICIDIAL_CDC_DELIVERY_MAX_AGE_S", "VICIDIAL_CDC_DELIVERY_RETRY_MAX_AGE_S"),
            ("VICIDIAL_CDC_DELIVERY_DEAD_ON_4XX", "VICIDIAL_CDC_DELIVERY_RETRY_DEAD_ON_4XX"),
        ],
    )
    def test_old_variable_names_the_new_one(self, old: str, new: str) -> None:
        """A variable whose name changed with the table is an error naming the new variable."""
        with pytest.raises(ConfigError, match=f"{old} is now {new}"):
            config.load(None, env={old: "1"})

    @pytest.mark.parametrize(
        ("text", "match"),
        [
            ("[delivery]\nretry = 5\n", r"\[delivery\.retry\] must be a table"),
            ("[delivery.retry]\nbase = 5\n", r"unknown key\(s\) in \[delivery\.retry\]: base"),
            ("[delivery.retry]\nmax_attempts = 2.5\n", "delivery.retry.max_attempts must be int, got float"),
        ],
    )
    def test_bad_table(self, tmp_path: Path, text: str, match: str) -> None:
        """Mistakes inside [delivery.retry] name the table and the key."""
        with pytest.raises(ConfigError, match=match):
            config.load(write(tmp_path, text), env={})


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


class TestValuesValidated:
    """Each bad value is a ConfigError naming the key and what it may be."""

    @pytest.mark.parametrize(
        ("text", "key", "allowed"),
        [
            ("[mysql]\nport = 0\n", "mysql.port", "between 1 and 65535"),
            ("[mysql]\nport = 70000\n", "mysql.port", "between 1 and 65535"),
            ("[mysql]\nserver_id = 0\n", "mysql.server_id", "between 1 and 4294967295"),
            ("[mysql]\nconnect_timeout_s = 0\n", "mysql.connect_timeout_s", "> 0"),
            ("[mysql]\nread_timeout_s = -1\n", "mysql.read_timeout_s", "> 0"),
            ("[mysql]\nheartbeat_s = nan\n", "mysql.heartbeat_s", "> 0"),
            ("[mysql]\nhost = ''\n", "mysql.host", "not be empty"),
            ("[mysql]\ndatabase = ' '\n", "mysql.database", "not be empty"),
            ("[mysql]\nssl_mode = 'on'\n", "mysql.ssl_mode", "disabled, preferred, required, verify_ca"),
            ("[reader]\nbatch_rows = 0\n", "reader.batch_rows", ">= 1"),
            ("[reader]\nqueue_batches = 0\n", "reader.queue_batches", ">= 1"),
            ("[reader]\nmax_pending = -5\n", "reader.max_pending", ">= 1"),
            ("[reader]\nmatch_window_s = 0\n", "reader.match_window_s", "> 0"),
            ("[reader]\ncustom_wait_s = -1\n", "reader.custom_wait_s", ">= 0"),
            ("[reader]\nreconnect_initial_s = 0\n", "reader.reconnect_initial_s", "> 0"),
            ("[reader]\nmax_downtime_s = inf\n", "reader.max_downtime_s", "> 0"),
            (
                "[reader]\nreconnect_initial_s = 5\nreconnect_max_s = 1\n",
                "reader.reconnect_max_s",
                ">= reader.reconnect_initial_s",
            ),
            ("[reader]\nserver_charset = 'klingon'\n", "reader.server_charset", "latin1, latin2"),
            ("[reader]\nserver_charset = 'swe7'\n", "reader.server_charset", "utf8mb4"),
            ("[reader]\nstart = 'yesterday'\n", "reader.start", "'current', 'earliest'"),
            ("[state]\nretention_s = 0\n", "state.retention_s", "> 0"),
            ("[state]\npath = ''\n", "state.path", "path of the state file"),
            ("[http]\nlisten = '9108'\n", "http.listen", "HOST:PORT"),
            ("[http]\nlisten = 'localhost:99999'\n", "http.listen", "0-65535"),
            ("[http]\nlisten = 'bad host!:80'\n", "http.listen", "host name"),
            ("[http]\nlisten = ':9108'\n", "http.listen", "HOST:PORT"),
            ("[delivery]\nmax_in_flight = 0\n", "delivery.max_in_flight", ">= 1"),
            ("[delivery]\nconnect_timeout_s = 0\n", "delivery.connect_timeout_s", "> 0"),
            ("[delivery]\nmax_response_bytes = -1\n", "delivery.max_response_bytes", ">= 0"),
            ("[delivery]\nshutdown_grace_s = -1\n", "delivery.shutdown_grace_s", ">= 0"),
            ("[delivery]\nvicidial_attempt_timeout_s = 0\n", "delivery.vicidial_attempt_timeout_s", "> 0"),
            ("[delivery.retry]\nbase_s = 0\n", "delivery.retry.base_s", "> 0"),
            ("[delivery.retry]\nfactor = 0.5\n", "delivery.retry.factor", ">= 1"),
            (
                "[delivery.retry]\nbase_s = 10\ncap_s = 5\n",
                "delivery.retry.cap_s",
                ">= delivery.retry.base_s",
            ),
            ("[delivery.retry]\nmax_attempts = 0\n", "delivery.retry.max_attempts", ">= 1"),
            ("[delivery.retry]\nmax_age_s = 0\n", "delivery.retry.max_age_s", "> 0"),
            ("[delivery]\nbreaker_failures = 0\n", "delivery.breaker_failures", ">= 1"),
            ("[delivery]\nbreaker_cooldown_s = -1\n", "delivery.breaker_cooldown_s", "> 0"),
            (
                "[delivery]\nbreaker_cooldown_s = 60\nbreaker_max_cooldown_s = 30\n",
                "delivery.breaker_max_cooldown_s",
                ">= delivery.breaker_cooldown_s",
            ),
            (
                '[delivery.endpoints."crm:443"]\nconnect_timeout_s = 0\n',
                "delivery.endpoints.crm:443.connect_timeout_s",
                "> 0",
            ),
            ("[log]\nlevel = 'LOUD'\n", "log.level", "DEBUG, INFO, WARNING, ERROR or CRITICAL"),
            ("[log]\nformat = 'xml'\n", "log.format", "json or text"),
            ("[urls]\nsystem = 'ftp://crm.example.com/x'\n", "urls.system", "http:// or https://"),
            ("[urls.lists]\n101 = 'crm.example.com/x'\n", "urls.lists.101", "---DISABLED---"),
        ],
    )
    def test_bad_value(self, tmp_path: Path, text: str, key: str, allowed: str) -> None:
        """The message names the key and the allowed values."""
        with pytest.raises(ConfigError) as caught:
            config.load(write(tmp_path, text), env={})
        assert key in str(caught.value)
        assert allowed in str(caught.value)

    def test_env_value_is_validated_too(self) -> None:
        """An override from the environment is held to the same rule."""
        with pytest.raises(ConfigError, match=r"reader\.batch_rows must be >= 1, got 0"):
            config.load(None, env={"VICIDIAL_CDC_READER_BATCH_ROWS": "0"})

    @pytest.mark.parametrize(
        "text",
        [
            "[http]\nlisten = '[::1]:9108'\n",
            "[http]\nlisten = '0.0.0.0:0'\n",
            "[http]\nlisten = 'metrics.internal:9108'\n",
            "[reader]\nserver_charset = 'LATIN1'\n",
            "[reader]\nserver_charset = 'utf8mb4'\ncustom_wait_s = 0\nstart = 'mysql-bin.000002:4'\n",
            "[urls]\nsystem = 'VARhttps://crm.example.com/x?id=--A--lead_id--B--'\n"
            "[urls.lists]\n101 = '---DISABLED---'\n",
            "[log]\nlevel = 'debug'\nformat = 'text'\n",
        ],
    )
    def test_good_values_load(self, tmp_path: Path, text: str) -> None:
        """Edge values that are fine stay fine."""
        config.load(write(tmp_path, text), env={})

    def test_lower_case_var_prefix_is_refused(self, tmp_path: Path) -> None:
        """VICIdial strips only an upper-case ``VAR`` (``/^VAR/``): ``varhttps://`` would never send."""
        with pytest.raises(ConfigError, match=r"urls\.system must be an http:// or https:// URL template"):
            config.load(write(tmp_path, "[urls]\nsystem = 'varhttps://crm.example.com/x'\n"), env={})


class TestParseStart:
    """reader.start accepts current, earliest, FILE:POS and MariaDB GTIDs."""

    @pytest.mark.parametrize(
        ("spec", "expected"),
        [
            ("current", "current"),
            ("earliest", "earliest"),
            ("binlog.000012:4567", Position("binlog.000012", 4567)),
            (" mysql-bin.000001:4 ", Position("mysql-bin.000001", 4)),
            ("0-1-42", "0-1-42"),
            ("0-1-42,1-2-7", "0-1-42,1-2-7"),
        ],
    )
    def test_valid(self, spec: str, expected: object) -> None:
        """Each form is recognised."""
        assert config.parse_start(spec) == expected

    @pytest.mark.parametrize("spec", ["", "latest", "file:", ":12", "0-1", "binlog.000001:x"])
    def test_invalid(self, spec: str) -> None:
        """Anything else is a configuration error that lists the accepted forms."""
        with pytest.raises(ConfigError, match="FILE:POS"):
            config.parse_start(spec)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


class TestTlsSettings:
    """[mysql] ssl_mode, ssl_ca, ssl_cert, ssl_key: the mode they imply and what is refused."""

    def test_default_is_preferred_without_a_context(self) -> None:
        """No TLS files: preferred (PyMySQL's default), no context of ours."""
        mysql = config.load(None, env={}).mysql
        assert mysql.tls_mode is config.SslMode.PREFERRED
        assert mysql.ssl_context() is None

    def test_ssl_ca_implies_verify_identity(self, tmp_path: Path, tls_files: TlsFiles) -> None:
        """Verified by default when TLS is on: the certificate and the host name."""
        mysql = config.load(write(tmp_path, f'[mysql]\nssl_ca = "{tls_files.ca}"\n'), env={}).mysql
        assert mysql.tls_mode is config.SslMode.VERIFY_IDENTITY
        ctx = mysql.ssl_context()
        assert ctx is not None
        assert (ctx.verify_mode, ctx.check_hostname) == (ssl.CERT_REQUIRED, True)
        assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2

    @pytest.mark.parametrize(
        ("mode", "verify_mode", "check_hostname"),
        [
            ("verify_ca", ssl.CERT_REQUIRED, False),
            ("VERIFY_CA", ssl.CERT_REQUIRED, False),
            ("required", ssl.CERT_NONE, False),
        ],
    )
    def test_weaker_modes(
        self,
        tmp_path: Path,
        tls_files: TlsFiles,
        mode: str,
        verify_mode: ssl.VerifyMode,
        check_hostname: bool,
    ) -> None:
        """verify_ca skips the name; required verifies nothing (and loads the client certificate)."""
        text = (
            f'[mysql]\nssl_mode = "{mode}"\nssl_cert = "{tls_files.client_cert}"\n'
            f'ssl_key = "{tls_files.client_key}"\n'
        )
        ctx = config.load(write(tmp_path, text), env={}).mysql.ssl_context()
        assert ctx is not None
        assert (ctx.verify_mode, ctx.check_hostname) == (verify_mode, check_hostname)

    @pytest.mark.parametrize(
        ("lines", "match"),
        [
            ('ssl_mode = "disabled"\nssl_ca = "{ca}"', r"ssl_mode = 'disabled' uses no TLS files"),
            ('ssl_mode = "preferred"\nssl_cert = "{cert}"\nssl_key = "{key}"', r"'preferred' uses no TLS"),
            ('ssl_mode = "required"\nssl_ca = "{ca}"', r"ssl_ca is set but ssl_mode = 'required'"),
            ('ssl_cert = "{cert}"', r"ssl_cert and mysql\.ssl_key go together"),
            ('ssl_ca = "{missing}"', r"cannot read mysql\.ssl_ca .*No such file"),
            ('ssl_ca = "{notpem}"', r"TLS files of \[mysql\] cannot be used"),
            ('ssl_cert = "{cert}"\nssl_key = "{ca_key}"', r"TLS files of \[mysql\] cannot be used"),
        ],
    )
    def test_refused(self, tmp_path: Path, tls_files: TlsFiles, lines: str, match: str) -> None:
        """Contradictions, missing or unusable files: errors naming the [mysql] key."""
        notpem = tmp_path / "notpem.pem"
        notpem.write_text("not a certificate\n", encoding="ascii")
        text = "[mysql]\n" + lines.format(
            ca=tls_files.ca,
            cert=tls_files.client_cert,
            key=tls_files.client_key,
            ca_key=tls_files.ca.with_suffix(".key"),
            missing=tmp_path / "missing.pem",
            notpem=notpem,
        )
        with pytest.raises(ConfigError, match=match):
            config.load(write(tmp_path, text + "\n"), env={})

    def test_readable_key_is_a_warning(
        self, tmp_path: Path, tls_files: TlsFiles, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A client key readable by group or others loads, with a warning naming chmod 600."""
        key = tmp_path / "client.key"
        key.write_bytes(tls_files.client_key.read_bytes())
        key.chmod(0o644)
        text = (
            f'[mysql]\nssl_ca = "{tls_files.ca}"\n'
            f'ssl_cert = "{tls_files.client_cert}"\nssl_key = "{key}"\n'
        )
        with caplog.at_level(logging.WARNING, logger="cdc.config"):
            config.load(write(tmp_path, text), env={})
        assert [r.getMessage() for r in caplog.records if "chmod 600" in r.getMessage()]
        caplog.clear()
        key.chmod(0o600)
        with caplog.at_level(logging.WARNING, logger="cdc.config"):
            config.load(write(tmp_path, text), env={})
        assert not caplog.records
