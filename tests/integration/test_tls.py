"""TLS to MySQL against a private MariaDB serving TLS with certificates made by the test.

The server (``require_secure_transport=ON``) refuses plaintext, and the streamer's
account is created ``REQUIRE X509``: a connection that does not present the client
certificate of ``[mysql] ssl_cert`` cannot log in. So every connection the streamer
makes (settings, schema, the binlog of either reader, ``check``) carries the configured
TLS settings, and ``performance_schema`` shows each of its sessions' ``Ssl_cipher``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.fence import wait_count
from support.harness import StartPipeline, make_config
from support.mariadb import MariaDBFactory, apply_grants

from cdc import config
from cdc.config import DECODERS, Config, MysqlConfig
from cdc.errors import SourceError
from cdc.ops import check, replay, status
from cdc.reader.connection import connect
from cdc.testing.mariadb import PrivateMariaDB, TlsFiles, ensure_installed, make_tls_files
from cdc.testing.receiver import Receiver
from cdc.testing.schema import create_vicidial_schema
from cdc.testing.simulate import Vicidial

pytestmark = pytest.mark.mariadb

DATABASE = "asterisk"
USER = "cdc_tls"
PASSWORD = "pw-tls-7"


@dataclasses.dataclass(frozen=True)
class TlsSite:
    """A TLS-only server with a VICIdial database and an X509 account for the streamer."""

    server: PrivateMariaDB
    files: TlsFiles
    #: Certificates of another CA, which did not sign the server's.
    other: TlsFiles

    def mysql(self, **changes: Any) -> MysqlConfig:
        """The streamer's [mysql]: verified TLS (ssl_ca implies verify_identity), client cert."""
        base = MysqlConfig(
            host=self.server.host,
            port=self.server.port,
            user=USER,
            password=config.Secret(PASSWORD),
            database=DATABASE,
            source="tls",
            read_timeout_s=10.0,
            heartbeat_s=1.0,
            ssl_ca=str(self.files.ca),
            ssl_cert=str(self.files.client_cert),
            ssl_key=str(self.files.client_key),
        )
        return dataclasses.replace(base, **changes)

    def sessions(self) -> list[tuple[str, str]]:
        """(command, Ssl_cipher) of every session of the streamer's account."""
        with contextlib.closing(self.server.connect()) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT t.PROCESSLIST_COMMAND, s.VARIABLE_VALUE FROM performance_schema.threads t"
                " JOIN performance_schema.status_by_thread s USING (THREAD_ID)"
                " WHERE t.PROCESSLIST_USER = %s AND s.VARIABLE_NAME = 'Ssl_cipher'",
                (USER,),
            )
            return [(str(command), str(cipher or "")) for command, cipher in cur.fetchall()]


@pytest.fixture(scope="module")
def tls_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsSite]:
    ensure_installed(allow_install=True)
    base = tmp_path_factory.mktemp("tls")
    files = make_tls_files(base / "site")
    other = make_tls_files(base / "other", ca_name="some other CA")
    server = PrivateMariaDB(tls=files, require_tls=True, options={"performance_schema": "ON"})
    with server:
        with contextlib.closing(server.connect()) as conn:
            create_vicidial_schema(conn, DATABASE)
            apply_grants(conn, database=DATABASE, user=USER, password=PASSWORD)
            with conn.cursor() as cur:
                cur.execute(f"ALTER USER '{USER}'@'127.0.0.1' REQUIRE X509")
        yield TlsSite(server, files, other)


def _config(site: TlsSite, tmp_path: Path, decoder: str, **mysql: Any) -> Config:
    base = make_config(site.server, DATABASE, tmp_path / f"state-{decoder}.db", decoder=decoder)
    return dataclasses.replace(base, mysql=site.mysql(**mysql))


class TestPipelineOverTls:
    """binlog → delivery over verified TLS, with either reader; every session encrypted."""

    @pytest.mark.both_readers
    async def test_leads_delivered_and_every_session_encrypted(
        self,
        tls_site: TlsSite,
        tmp_path: Path,
        receiver: Receiver,
        start_pipeline: StartPipeline,
        decoder: str,
    ) -> None:
        """add_lead → request, as an X509 account on a TLS-only server; each session has a cipher."""
        prefix = f"/tls-{decoder}"
        with Vicidial.connect(tls_site.server, database=DATABASE, seed=3) as vici:
            list_id = 7100 + DECODERS.index(decoder)
            vici.add_list(list_id, "TLS leads", "TLSCAMP", "")
            vici.set_list_url(list_id, f"{receiver.url}{prefix}?id=--A--lead_id--B--")
            run = await start_pipeline(
                tls_site.server, DATABASE, config=_config(tls_site, tmp_path, decoder)
            )
            lead_ids = [
                await asyncio.to_thread(vici.add_lead, phone_number=f"31255500{i:02d}", list_id=list_id)
                for i in range(3)
            ]
            targets = await wait_count(receiver, prefix, 3)
            assert sorted(targets) == sorted(f"{prefix}?id={lead_id}" for lead_id in lead_ids)
            sessions = tls_site.sessions()
            await run.stop()
        assert "Binlog Dump" in {command for command, _ in sessions}, sessions
        assert all(cipher for _, cipher in sessions), sessions


class TestOperatorCommandsOverTls:
    """``replay`` and ``status`` read the server with the same TLS settings."""

    def test_replay_and_status_server_read(self, tls_site: TlsSite, tmp_path: Path) -> None:
        """As the X509 account: replay finds the add_lead; status reads positions and binlogs."""
        with Vicidial.connect(tls_site.server, database=DATABASE, seed=4) as vici:
            vici.add_list(7200, "Replayed", "TLSCAMP", "")
            lead_id = vici.add_lead(phone_number="3125550777", list_id=7200)
        cfg = _config(tls_site, tmp_path, "fast")
        out = io.StringIO()
        code = replay.replay_command(cfg, lead_ids=[str(lead_id)], dry_run=True, as_json=True, out=out)
        assert code == 0
        assert json.loads(out.getvalue())["found"] == 1
        state = status.read_server(cfg)
        assert state.reachable, state.error
        assert state.binlogs


class TestCheckOverTls:
    """``check`` reports the encrypted, verified session."""

    def test_check_reports_cipher_and_verification(self, tls_site: TlsSite, tmp_path: Path) -> None:
        """Loaded from TOML under the MySQL client names; tls OK with the cipher; grants OK."""
        path = tmp_path / "tls.toml"
        path.write_text(
            "[mysql]\n"
            f'host = "{tls_site.server.host}"\nport = {tls_site.server.port}\n'
            f'user = "{USER}"\ndatabase = "{DATABASE}"\n'
            f'ssl_ca = "{tls_site.files.ca}"\n'
            f'ssl_cert = "{tls_site.files.client_cert}"\nssl_key = "{tls_site.files.client_key}"\n'
            '[urls]\nsystem = "https://crm.example.com/new?id=--A--lead_id--B--"\n',
            encoding="utf-8",
        )
        cfg = config.load(path, env={"VICIDIAL_CDC_MYSQL_PASSWORD": PASSWORD})
        assert cfg.mysql.tls_mode is config.SslMode.VERIFY_IDENTITY
        results = {r.name: r for r in check.run_checks(cfg)}
        assert results["connect"].status is check.Status.OK
        tls = results["tls"]
        assert tls.status is check.Status.OK
        assert "encrypted (TLSv1." in tls.message and "name verified" in tls.message
        assert results["grant.select"].status is check.Status.OK


class TestRefused:
    """What TLS must refuse is refused, with a message naming the setting to fix."""

    async def test_wrong_ca_is_refused_by_connect_check_and_run(
        self, tls_site: TlsSite, tmp_path: Path, start_pipeline: StartPipeline
    ) -> None:
        """A CA that did not sign the server's certificate: no connection, 'ssl_ca' in the error."""
        mysql = tls_site.mysql(ssl_ca=str(tls_site.other.ca))
        with pytest.raises(SourceError, match=r"certificate that was refused .*ssl_ca"):
            await asyncio.to_thread(connect, mysql)
        (failed,) = await asyncio.to_thread(check.run_checks, dataclasses.replace(Config(), mysql=mysql))
        assert (failed.name, failed.status) == ("connect", check.Status.FAIL)
        assert "ssl_ca" in failed.fix
        wrong_ca = _config(tls_site, tmp_path, "fast", ssl_ca=str(tls_site.other.ca))
        with pytest.raises(SourceError, match=r"certificate that was refused .*ssl_ca"):
            await start_pipeline(tls_site.server, DATABASE, config=wrong_ca)

    def test_server_without_tls_is_refused_not_used_in_plaintext(
        self, tls_site: TlsSite, mariadb: PrivateMariaDB
    ) -> None:
        """required and verify_identity against a server without TLS: refused, no plaintext fallback."""
        for changes in ({"ssl_mode": "required"}, {"ssl_ca": str(tls_site.files.ca)}):
            mysql = MysqlConfig(host=mariadb.host, port=mariadb.port, user="root", **changes)
            with pytest.raises(SourceError, match="does not offer TLS"):
                connect(mysql)
        plaintext = connect(MysqlConfig(host=mariadb.host, port=mariadb.port, user="root"))
        with contextlib.closing(plaintext), plaintext.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            assert cur.fetchone()[1] == ""  # preferred, on loopback: plaintext when not offered

    def test_certificate_for_another_name(self, mariadb_factory: MariaDBFactory, tmp_path: Path) -> None:
        """verify_identity refuses a certificate that does not name [mysql] host; verify_ca accepts it."""
        files = make_tls_files(tmp_path / "named", server_names=("db.internal",))
        server = mariadb_factory(tls=files)
        mysql = MysqlConfig(host=server.host, port=server.port, user="root", ssl_ca=str(files.ca))
        with pytest.raises(SourceError, match=r"does not name '127\.0\.0\.1'"):
            connect(mysql)
        ca_only = connect(dataclasses.replace(mysql, ssl_mode="verify_ca"))
        with contextlib.closing(ca_only), ca_only.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            assert cur.fetchone()[1]
