"""Tests for cdc.store: the roles' semantics on both backends, and the SQLite file's own duties.

The ``store`` fixture runs a test against :class:`SqliteStore` (a real file under
tmp_path) and :class:`MemoryStore` alike, so the in-memory fake the sender's unit tests
use is proven against the real store; ``sqlite_store`` tests what only a file has
(modes, WAL, atomicity on failure, erasure, busy locks, other connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from cdc.errors import StoreError
from cdc.records import Attempt, Delivery, Outcome, Position, UrlSource
from cdc.store import (
    OPERATOR_BATCH_ROWS,
    SCHEMA_VERSION,
    AsyncStore,
    DeadGroup,
    DeadSummary,
    DeliveryState,
    EndpointCounts,
    HandOff,
    LockWait,
    SqliteStore,
    StateStore,
    fair_merge,
)
from cdc.store.memory import MemoryStore
from cdc.store.sqlitefile import store_error

T0 = 1_700_000_000.0
P1 = Position("mysql-bin.000007", 4_000, "0-1-100")
P2 = Position("mysql-bin.000007", 9_000, "0-1-140")


def make_delivery(lead_id: int = 1, endpoint_id: str = "crm", source: str = "vici1") -> Delivery:
    return Delivery(
        source=source,
        lead_id=lead_id,
        list_id=101,
        endpoint_id=endpoint_id,
        method="GET",
        url=f"https://crm.example/api?lead_id={lead_id}",
        url_source=UrlSource.VICIDIAL_LIST,
        inserted_at=1_699_999_990,
    )


def attempt(delivery_id: int, outcome: Outcome, status: int = 200, error: str = "") -> Attempt:
    return Attempt(delivery_id, outcome, status, error, 0.05)


@contextlib.contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A second, independent connection to the state file (another process's view)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "state.db"


@pytest.fixture
def sqlite_store(db_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(db_path)
    s.open()
    yield s
    s.close()


@pytest.fixture(params=["sqlite", "memory"])
def store(request: pytest.FixtureRequest, db_path: Path) -> Iterator[StateStore]:
    """Each backend in turn: the role tests hold for both."""
    s: StateStore = SqliteStore(db_path) if request.param == "sqlite" else MemoryStore()
    s.open()
    yield s
    s.close()


def enqueue(store: StateStore, *deliveries: Delivery, now: float = T0) -> list[int]:
    return store.commit_batch(list(deliveries), None, now)


class TestOpen:
    """Opening creates or upgrades a private WAL-mode file and refuses foreign ones."""

    def test_new_file_gets_schema_and_private_modes(self, sqlite_store: SqliteStore, db_path: Path) -> None:
        """A new file has the current user_version, mode 0600, in a new 0700 directory."""
        with raw(db_path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert mode(db_path) == 0o600
        assert mode(db_path.parent) == 0o700

    def test_wal_files_are_private(self, sqlite_store: SqliteStore, db_path: Path) -> None:
        """The -wal and -shm files that hold recent commits are 0600 as well."""
        enqueue(sqlite_store, make_delivery())
        for suffix in ("-wal", "-shm"):
            companion = Path(f"{db_path}{suffix}")
            assert companion.exists()
            assert mode(companion) == 0o600

    def test_file_mode_survives_umask(self, db_path: Path) -> None:
        """Even with a permissive umask the state file and WAL files are 0600."""
        old = os.umask(0)
        try:
            s = SqliteStore(db_path)
            s.open()
            enqueue(s, make_delivery())
            assert {mode(Path(f"{db_path}{sfx}")) for sfx in ("", "-wal", "-shm")} == {0o600}
            s.close()
        finally:
            os.umask(old)

    def test_existing_open_file_is_tightened(self, db_path: Path) -> None:
        """An existing world-readable state file is made 0600 on open."""
        db_path.parent.mkdir(mode=0o700)
        db_path.touch()
        db_path.chmod(0o644)
        s = SqliteStore(db_path)
        s.open()
        s.close()
        assert mode(db_path) == 0o600

    def test_empty_existing_file_is_migrated(self, db_path: Path) -> None:
        """A zero-byte file is migrated from user_version 0 to the current version."""
        db_path.parent.mkdir(mode=0o700)
        db_path.touch()
        s = SqliteStore(db_path)
        s.open()
        assert s.load_checkpoint() is None
        s.close()
        with raw(db_path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)

    def test_reopen_keeps_state(self, db_path: Path) -> None:
        """Deliveries, the checkpoint and metadata survive close and a new open."""
        first = SqliteStore(db_path)
        first.open()
        ids = first.commit_batch([make_delivery(1), make_delivery(2)], P1, T0)
        first.meta_set("server_uuid", "abc")
        first.close()

        second = SqliteStore()
        second.open(db_path)
        try:
            assert second.load_checkpoint() == P1
            assert second.meta_get("server_uuid") == "abc"
            assert [r.delivery for r in second.claim_due(T0, 10)] == [make_delivery(1), make_delivery(2)]
            (new_id,) = second.commit_batch([make_delivery(3)], None, T0)
            assert new_id > max(ids)
        finally:
            second.close()

    def test_not_a_database(self, db_path: Path) -> None:
        """A file that is not SQLite raises StoreError that says to move it aside."""
        db_path.parent.mkdir(mode=0o700)
        db_path.write_bytes(b"this is not a database\n" * 200)
        s = SqliteStore(db_path)
        with pytest.raises(StoreError, match=r"corrupt.*move the file aside"):
            s.open()
        s.close()

    def test_newer_schema_is_refused(self, db_path: Path) -> None:
        """A file written by a newer version (higher user_version) is not touched."""
        db_path.parent.mkdir(mode=0o700)
        with raw(db_path) as conn:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        with pytest.raises(StoreError, match="newer"):
            SqliteStore(db_path).open()

    def test_foreign_database_is_refused(self, db_path: Path) -> None:
        """An SQLite file of another application (tables, user_version 0) is refused."""
        db_path.parent.mkdir(mode=0o700)
        with raw(db_path) as conn:
            conn.execute("CREATE TABLE delivery (x)")
        with pytest.raises(StoreError, match="another application"):
            SqliteStore(db_path).open()

    def test_lifecycle_errors(self, db_path: Path) -> None:
        """Use before open, a second open, reopening after close and a missing path fail."""
        s = SqliteStore(db_path)
        with pytest.raises(RuntimeError, match="unopened"):
            s.load_checkpoint()
        s.open()
        with pytest.raises(RuntimeError, match="opened"):
            s.open()
        s.close()
        s.close()
        with pytest.raises(RuntimeError, match="closed"):
            s.open()
        with pytest.raises(ValueError, match="path"):
            SqliteStore().open()
        with pytest.raises(ValueError, match="differs"):
            SqliteStore(db_path).open(db_path.with_name("other.db"))

    def test_options_are_validated(self, db_path: Path) -> None:
        """synchronous accepts NORMAL or FULL only; FULL works end to end."""
        with pytest.raises(ValueError, match="synchronous"):
            SqliteStore(db_path, synchronous="OFF")  # type: ignore[arg-type]
        s = SqliteStore(db_path, synchronous="FULL")
        s.open()
        assert enqueue(s, make_delivery()) == [1]
        s.close()

    def test_sqlite_store_satisfies_the_interface(self, db_path: Path) -> None:
        """SqliteStore is a StateStore (checked by mypy on this assignment)."""
        backend: StateStore = SqliteStore(db_path)
        backend.open()
        backend.close()

    def test_memory_store_satisfies_the_interface(self) -> None:
        """MemoryStore is a StateStore too (checked by mypy on this assignment)."""
        backend: StateStore = MemoryStore()
        backend.open()
        backend.close()


class TestCommitBatch:
    """Enqueueing is idempotent on (source, lead_id, endpoint_id); fields round-trip."""

    def test_same_key_is_stored_once(self, store: StateStore) -> None:
        """The same key twice in one batch, or in a later batch, yields one row.

        Ids are increasing but not dense: an ignored duplicate still uses up an id.
        """
        first = store.commit_batch([make_delivery(1), make_delivery(1), make_delivery(2)], P1, T0)
        assert len(first) == 2
        (third,) = store.commit_batch([make_delivery(1), make_delivery(3)], P2, T0 + 1)
        assert third > max(first)
        assert [c.delivery.lead_id for c in store.claim_due(T0 + 1, 10)] == [1, 2, 3]

    def test_other_endpoint_or_source_is_a_new_key(self, store: StateStore) -> None:
        """Another endpoint or another source for the same lead is a separate delivery."""
        ids = enqueue(store, make_delivery(1), make_delivery(1, "erp"), make_delivery(1, source="vici2"))
        assert ids == [1, 2, 3]

    def test_delivered_row_is_not_enqueued_again(self, store: StateStore) -> None:
        """Re-reading the binlog after delivery does not create a second delivery."""
        enqueue(store, make_delivery(1))
        (claimed,) = store.claim_due(T0, 10)
        store.record_attempts([(attempt(claimed.id, Outcome.DELIVERED), None)], T0 + 1)
        assert enqueue(store, make_delivery(1), now=T0 + 2) == []
        record = store.get(claimed.id)
        assert record is not None
        assert record.state is DeliveryState.DELIVERED

    def test_fields_round_trip(self, store: StateStore) -> None:
        """Everything needed to send is stored; the row starts pending, due now."""
        d = Delivery(
            source="vici1",
            lead_id=77,
            list_id=900,
            endpoint_id="hook",
            method="POST",
            url="https://hook.example/in",
            url_source=UrlSource.CONFIG_SYSTEM,
            inserted_at=1_699_999_000,
            body=b'{"phone":"\xc3\xa9"}\x00',
            content_type="application/json",
        )
        (delivery_id,) = enqueue(store, d)
        record = store.get(delivery_id)
        assert record is not None
        assert record.delivery == d
        assert record.state is DeliveryState.PENDING
        assert (record.attempts, record.next_attempt_at, record.created_at) == (0, T0, T0)
        assert (record.last_status, record.last_error, record.delivered_at) == (0, "", None)

    def test_idempotency_key_is_stored(self, sqlite_store: SqliteStore, db_path: Path) -> None:
        """The row carries its idempotency key in its own column."""
        d = make_delivery(77)
        (delivery_id,) = enqueue(sqlite_store, d)
        with raw(db_path) as conn:
            row = conn.execute("SELECT idempotency_key FROM delivery WHERE id = ?", (delivery_id,))
            assert row.fetchone() == (d.idempotency_key,)

    def test_refused_delivery_is_dead_at_once(self, store: StateStore) -> None:
        """A delivery refused at routing is stored dead with its reason, never claimed."""
        refused = dataclasses.replace(make_delivery(2), refused="origin_refused https://evil.example:443")
        ids = enqueue(store, make_delivery(1), refused)
        assert [c.id for c in store.claim_due(T0, 10)] == [ids[0]]
        record = store.get(ids[1])
        assert record is not None
        assert (record.state, record.last_error, record.attempts) == (
            DeliveryState.DEAD,
            "origin_refused https://evil.example:443",
            0,
        )
        assert [r.id for r in store.list_dead(endpoint_id="crm")] == [ids[1]]

    def test_checkpoint_alone(self, store: StateStore) -> None:
        """A batch without deliveries saves the checkpoint; nothing at all is a no-op."""
        assert store.load_checkpoint() is None
        assert store.commit_batch([], P1, T0) == []
        saved = store.load_checkpoint()
        assert saved == P1
        assert saved is not None
        assert saved.gtid == "0-1-100"
        store.commit_batch([], P2, T0)
        assert store.load_checkpoint() == P2
        assert store.commit_batch([], None, T0) == []
        assert store.load_checkpoint() == P2


class TestAtomicity:
    """Deliveries and the checkpoint commit together or not at all."""

    def test_bad_delivery_rolls_back_batch_and_checkpoint(self, sqlite_store: SqliteStore) -> None:
        """A NOT NULL violation mid-batch leaves neither earlier rows nor the checkpoint."""
        sqlite_store.commit_batch([make_delivery(1)], P1, T0)
        bad = Delivery(
            source="vici1",
            lead_id=3,
            list_id=101,
            endpoint_id="crm",
            method="GET",
            url=cast("str", None),
            url_source=UrlSource.VICIDIAL_LIST,
            inserted_at=0,
        )
        with pytest.raises(StoreError, match="NOT NULL"):
            sqlite_store.commit_batch([make_delivery(2), bad], P2, T0 + 1)
        assert sqlite_store.load_checkpoint() == P1
        assert [c.pending for c in sqlite_store.counts()] == [1]
        assert sqlite_store.commit_batch([make_delivery(2)], P2, T0 + 2) != []

    def test_checkpoint_failure_rolls_back_deliveries(self, sqlite_store: SqliteStore, db_path: Path) -> None:
        """A failure while saving the checkpoint, after the inserts, removes them again."""
        sqlite_store.commit_batch([make_delivery(1)], P1, T0)
        with raw(db_path) as conn:
            conn.execute(
                "CREATE TRIGGER fail_checkpoint BEFORE UPDATE ON checkpoint"
                " BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            )
        with pytest.raises(StoreError, match="injected failure"):
            sqlite_store.commit_batch([make_delivery(2), make_delivery(3)], P2, T0 + 1)
        assert sqlite_store.load_checkpoint() == P1
        assert [c.pending for c in sqlite_store.counts()] == [1]
        assert sqlite_store.get(2) is None


class TestClaimDue:
    """claim_due hands out due pending rows once, in due order, marked in flight."""

    def test_claims_due_rows_in_order(self, store: StateStore) -> None:
        """Rows due by now come oldest-due first; later ones stay pending."""
        enqueue(store, make_delivery(1), now=T0 + 5)
        enqueue(store, make_delivery(2), now=T0)
        enqueue(store, make_delivery(3), now=T0 + 60)
        claimed = store.claim_due(T0 + 10, 10)
        assert [c.delivery.lead_id for c in claimed] == [2, 1]
        assert [(c.attempts, c.created_at) for c in claimed] == [(0, T0), (0, T0 + 5)]
        (counts,) = store.counts()
        assert (counts.pending, counts.in_flight) == (1, 2)
        record = store.get(claimed[0].id)
        assert record is not None
        assert record.state is DeliveryState.IN_FLIGHT

    def test_limit_and_no_double_claim(self, store: StateStore) -> None:
        """The limit caps one claim; rows in flight are not claimed again."""
        enqueue(store, *(make_delivery(i) for i in range(1, 6)))
        assert [c.id for c in store.claim_due(T0, 2)] == [1, 2]
        assert [c.id for c in store.claim_due(T0, 10)] == [3, 4, 5]
        assert store.claim_due(T0, 10) == []
        assert store.claim_due(T0, 0) == []

    def test_excluded_endpoints_are_left_pending(self, store: StateStore) -> None:
        """Rows of excluded endpoints are skipped; the others keep their due order."""
        enqueue(store, *(make_delivery(i, "down") for i in range(1, 50)), now=T0)
        enqueue(store, make_delivery(100, "crm"), now=T0 + 2)
        enqueue(store, make_delivery(101, "erp"), now=T0 + 1)
        enqueue(store, make_delivery(102, "crm"), now=T0 + 3)
        claimed = store.claim_due(T0 + 10, 2, exclude_endpoints={"down"})
        assert [c.delivery.lead_id for c in claimed] == [101, 100]
        claimed = store.claim_due(T0 + 10, 10, exclude_endpoints=["down", "erp"])
        assert [c.delivery.lead_id for c in claimed] == [102]
        by_endpoint = {c.endpoint_id: c for c in store.counts()}
        assert by_endpoint["down"].pending == 49

    def test_caps_bound_each_endpoint(self, store: StateStore) -> None:
        """A capped backlog takes only its cap; a newer row of another endpoint is claimed too."""
        enqueue(store, *(make_delivery(i, "slow") for i in range(1, 1001)), now=T0)
        enqueue(store, make_delivery(5000, "crm"), now=T0 + 5)
        claimed = store.claim_due(T0 + 10, 200, caps={"slow": 5}, default_cap=16)
        by_endpoint = [c.delivery.endpoint_id for c in claimed]
        assert by_endpoint.count("slow") == 5 and by_endpoint.count("crm") == 1
        assert store.claim_due(T0 + 10, 200, caps={"slow": 0, "crm": 16}) == []
        assert {c.endpoint_id: c.pending for c in store.counts()}["slow"] == 995

    def test_short_limit_is_shared(self, store: StateStore) -> None:
        """With fewer slots than rows, endpoints take turns instead of oldest-first."""
        enqueue(store, *(make_delivery(i, "slow") for i in range(1, 11)), now=T0)
        enqueue(store, make_delivery(100, "crm"), now=T0 + 5)
        claimed = store.claim_due(T0 + 10, 2, default_cap=16)
        assert [c.delivery.lead_id for c in claimed] == [1, 100]


class TestCommitHandOff:
    """commit_hand_off inserts the rows a claim right after it would take already in flight."""

    def test_new_rows_are_handed_in_flight(self, store: StateStore) -> None:
        """With room, every new row is returned in flight: nothing is left for a claim."""
        committed = store.commit_hand_off(
            [make_delivery(1), make_delivery(2)], P1, T0, HandOff(10, default_cap=16)
        )
        assert [(h.id, h.delivery.lead_id, h.attempts, h.created_at) for h in committed.handed] == [
            (1, 1, 0, T0),
            (2, 2, 0, T0),
        ]
        assert (committed.ids, committed.pending_endpoints) == ([1, 2], frozenset())
        record = store.get(1)
        assert record is not None and record.state is DeliveryState.IN_FLIGHT
        assert store.load_checkpoint() == P1
        assert store.claim_due(T0 + 1, 10) == []

    def test_caps_and_limit_take_turns(self, store: StateStore) -> None:
        """Per endpoint at most its cap, at most the limit in all, endpoints in turns; the rest pend."""
        deliveries = [make_delivery(i, "crm") for i in (1, 2, 3)] + [make_delivery(i, "erp") for i in (4, 5)]
        committed = store.commit_hand_off(deliveries, None, T0, HandOff(3, {"crm": 2}, default_cap=16))
        assert sorted(h.delivery.lead_id for h in committed.handed) == [1, 2, 4]
        assert committed.pending_endpoints == {"crm", "erp"}
        assert [c.delivery.lead_id for c in store.claim_due(T0, 10)] == [3, 5]

    def test_blocked_endpoint_hands_off_nothing(self, store: StateStore) -> None:
        """A cap of 0 (breaker open, Retry-After pause, no free slot) leaves its new rows pending."""
        committed = store.commit_hand_off([make_delivery(1)], None, T0, HandOff(10, {"crm": 0}))
        assert committed.handed == [] and committed.pending_endpoints == {"crm"}
        record = store.get(1)
        assert record is not None and record.state is DeliveryState.PENDING

    def test_no_offer_hands_off_nothing(self, store: StateStore) -> None:
        """Without an offer it is commit_batch: new rows pending, ids returned."""
        committed = store.commit_hand_off([make_delivery(1)], P1, T0, None)
        assert (committed.ids, committed.handed, committed.pending_endpoints) == ([1], [], {"crm"})

    def test_new_rows_do_not_jump_older_due_rows(self, store: StateStore) -> None:
        """An endpoint with due rows hands off none of its new rows; they are claimed after them."""
        enqueue(store, make_delivery(1, "crm"), now=T0)
        committed = store.commit_hand_off(
            [make_delivery(2, "crm"), make_delivery(3, "erp")], None, T0 + 1, HandOff(10, default_cap=16)
        )
        assert [h.delivery.lead_id for h in committed.handed] == [3]
        assert committed.pending_endpoints == {"crm"}
        assert [c.delivery.lead_id for c in store.claim_due(T0 + 1, 10)] == [1, 2]

    def test_rows_due_later_do_not_hold_new_rows(self, store: StateStore) -> None:
        """A retry due in the future is not jumped by a new row: the new row is handed off."""
        enqueue(store, make_delivery(1), now=T0)
        store.claim_due(T0, 1)
        store.record_attempts([(attempt(1, Outcome.RETRY, 503), T0 + 60)], T0)
        committed = store.commit_hand_off([make_delivery(2)], None, T0 + 1, HandOff(10, default_cap=16))
        assert [h.delivery.lead_id for h in committed.handed] == [2]

    def test_other_endpoints_due_rows_keep_their_turns(self, store: StateStore) -> None:
        """A short limit is shared with another endpoint's due rows, as a claim would share it."""
        enqueue(store, *(make_delivery(i, "slow") for i in range(1, 11)), now=T0)
        committed = store.commit_hand_off(
            [make_delivery(100, "crm"), make_delivery(101, "crm")], None, T0 + 5, HandOff(2, default_cap=16)
        )
        assert [h.delivery.lead_id for h in committed.handed] == [100]
        assert committed.pending_endpoints == {"crm"}

    def test_refused_and_duplicate_rows_are_not_handed(self, store: StateStore) -> None:
        """A refused delivery is dead at once and an already stored key is ignored: neither is handed."""
        enqueue(store, make_delivery(1))
        store.claim_due(T0, 1)
        store.record_attempts([(attempt(1, Outcome.DELIVERED), None)], T0)
        refused = dataclasses.replace(make_delivery(2), refused="origin_refused https://evil.example:443")
        committed = store.commit_hand_off(
            [make_delivery(1), refused, make_delivery(3)], None, T0, HandOff(10, default_cap=16)
        )
        assert [h.delivery.lead_id for h in committed.handed] == [3]
        assert committed.handed[0].delivery.refused == ""
        assert len(committed.ids) == 2 and committed.pending_endpoints == frozenset()
        dead = store.get(committed.ids[0])
        assert dead is not None and dead.state is DeliveryState.DEAD
        (counts,) = store.counts()
        assert (counts.delivered, counts.in_flight, counts.dead) == (1, 1, 1)

    def test_results_are_recorded_in_the_same_commit(self, store: StateStore) -> None:
        """Attempts given with the commit are applied as record_attempts would apply them."""
        enqueue(store, make_delivery(1), make_delivery(2))
        store.claim_due(T0, 10)
        committed = store.commit_hand_off(
            [make_delivery(3)],
            P1,
            T0 + 1,
            HandOff(10, default_cap=16),
            [(attempt(1, Outcome.DELIVERED), None), (attempt(2, Outcome.RETRY, 503), T0 + 30)],
        )
        assert committed.recorded == 2
        delivered, retry = store.get(1), store.get(2)
        assert delivered is not None and delivered.state is DeliveryState.DELIVERED
        assert retry is not None and (retry.state, retry.next_attempt_at) == (DeliveryState.PENDING, T0 + 30)
        with pytest.raises(ValueError, match="RETRY"):
            store.commit_hand_off([make_delivery(4)], P2, T0, None, [(attempt(3, Outcome.RETRY), None)])
        assert store.load_checkpoint() == P1 and store.get(4) is None

    def test_results_alone_are_committed(self, store: StateStore) -> None:
        """A commit with only results (no rows, no checkpoint) still records them."""
        enqueue(store, make_delivery(1))
        store.claim_due(T0, 1)
        committed = store.commit_hand_off([], None, T0, None, [(attempt(1, Outcome.DEAD, 410), None)])
        assert committed.recorded == 1
        record = store.get(1)
        assert record is not None and record.state is DeliveryState.DEAD

    def test_handed_rows_are_sent_again_after_a_crash(self, db_path: Path) -> None:
        """Rows handed off by a process that died before sending are pending after requeue, once each."""
        first = SqliteStore(db_path)
        first.open()
        committed = first.commit_hand_off(
            [make_delivery(1), make_delivery(2)], P1, T0, HandOff(10, default_cap=16)
        )
        assert len(committed.handed) == 2
        first.close()  # died: nothing sent, nothing recorded
        second = SqliteStore(db_path)
        second.open()
        try:
            assert second.requeue_in_flight() == 2
            assert [c.id for c in second.claim_due(T0 + 1, 10)] == [h.id for h in committed.handed]
            second.commit_batch([make_delivery(1), make_delivery(2)], P1, T0 + 2)  # the binlog read again
            (counts,) = second.counts()
            assert (counts.pending, counts.in_flight) == (0, 2)
        finally:
            second.close()


class TestFairMerge:
    """fair_merge: endpoints take turns, each keeps its own order, the limit holds. Pure."""

    @dataclasses.dataclass(frozen=True)
    class Row:
        id: int
        next_attempt_at: float

    def test_turns(self) -> None:
        """Round robin in the order the endpoints' oldest rows became due."""
        r = self.Row
        slow = [r(1, 1.0), r(2, 1.0), r(3, 1.0)]
        crm = [r(9, 5.0)]
        erp = [r(7, 3.0), r(8, 4.0)]
        assert [x.id for x in fair_merge([crm, slow, erp], 10)] == [1, 7, 9, 2, 8, 3]
        assert [x.id for x in fair_merge([crm, slow, erp], 4)] == [1, 7, 9, 2]
        assert fair_merge([[], []], 5) == [] and fair_merge([slow], 0) == []


class TestRecordAttempts:
    """Each outcome moves an in-flight row to its next state and counts the attempt."""

    def test_outcomes(self, store: StateStore) -> None:
        """DELIVERED, RETRY and DEAD in one batch each update their row."""
        enqueue(store, make_delivery(1), make_delivery(2), make_delivery(3))
        store.claim_due(T0, 10)
        changed = store.record_attempts(
            [
                (attempt(1, Outcome.DELIVERED, 200), None),
                (attempt(2, Outcome.RETRY, 503, "http_5xx"), T0 + 30),
                (attempt(3, Outcome.DEAD, 404, "http_4xx"), None),
            ],
            T0 + 1,
        )
        assert changed == 3
        delivered, retry, dead = (store.get(i) for i in (1, 2, 3))
        assert delivered is not None and retry is not None and dead is not None
        assert (delivered.state, delivered.delivered_at, delivered.last_status) == (
            DeliveryState.DELIVERED,
            T0 + 1,
            200,
        )
        assert (retry.state, retry.next_attempt_at, retry.last_error) == (
            DeliveryState.PENDING,
            T0 + 30,
            "http_5xx",
        )
        assert (dead.state, dead.last_status, dead.updated_at) == (DeliveryState.DEAD, 404, T0 + 1)
        assert [r.attempts for r in (delivered, retry, dead)] == [1, 1, 1]

    def test_delivered_row_keeps_no_lead_data(self, store: StateStore) -> None:
        """A delivered row's URL shrinks to its origin and its body goes; ids and status stay."""
        d = dataclasses.replace(
            make_delivery(1),
            method="POST",
            url="https://user:pw@crm.example:8443/hook/s3cret?ph=3125558642",
            body=b'{"phone_number":"3125558642"}',
        )
        (delivery_id,) = enqueue(store, d)
        store.claim_due(T0, 10)
        store.record_attempts([(attempt(delivery_id, Outcome.DELIVERED), None)], T0 + 1)
        record = store.get(delivery_id)
        assert record is not None and record.state is DeliveryState.DELIVERED
        assert (record.delivery.url, record.delivery.body) == ("https://crm.example:8443", b"")
        assert (record.delivery.lead_id, record.delivery.endpoint_id, record.last_status) == (1, "crm", 200)

    def test_retry_is_claimed_again_with_attempt_count(self, store: StateStore) -> None:
        """A retried row is due at its retry time and carries its attempt count."""
        enqueue(store, make_delivery(1))
        store.claim_due(T0, 1)
        store.record_attempts([(attempt(1, Outcome.RETRY, 0, "timeout"), T0 + 30)], T0 + 1)
        assert store.claim_due(T0 + 29, 1) == []
        (again,) = store.claim_due(T0 + 30, 1)
        assert again.attempts == 1

    def test_rows_not_in_flight_are_unchanged(self, store: StateStore) -> None:
        """An outcome for a pending or unknown row changes nothing and is not counted."""
        enqueue(store, make_delivery(1))
        assert store.record_attempts([(attempt(1, Outcome.DEAD), None)], T0) == 0
        assert store.record_attempts([(attempt(99, Outcome.DELIVERED), None)], T0) == 0
        assert store.record_attempts([], T0) == 0
        record = store.get(1)
        assert record is not None
        assert (record.state, record.attempts) == (DeliveryState.PENDING, 0)

    def test_retry_needs_a_time(self, store: StateStore) -> None:
        """A RETRY without a retry time is rejected before anything is written."""
        enqueue(store, make_delivery(1), make_delivery(2))
        store.claim_due(T0, 10)
        with pytest.raises(ValueError, match="RETRY"):
            store.record_attempts(
                [(attempt(1, Outcome.DELIVERED), None), (attempt(2, Outcome.RETRY, 503), None)], T0
            )
        (counts,) = store.counts()
        assert (counts.in_flight, counts.delivered) == (2, 0)


class TestRequeueInFlight:
    """At startup, rows a previous run left in flight become pending again."""

    def test_requeue(self, store: StateStore) -> None:
        """Only in-flight rows move, their attempt count unchanged, due at once."""
        enqueue(store, make_delivery(1), make_delivery(2), make_delivery(3))
        store.claim_due(T0, 2)
        store.record_attempts([(attempt(1, Outcome.DEAD, 410), None)], T0)
        assert store.requeue_in_flight() == 1
        assert store.requeue_in_flight() == 0
        (counts,) = store.counts()
        assert (counts.pending, counts.in_flight, counts.dead) == (2, 0, 1)
        assert [c.id for c in store.claim_due(T0, 10)] == [2, 3]


class TestNextDueAt:
    """next_due_at is the earliest due time of a pending row."""

    def test_next_due_at(self, store: StateStore) -> None:
        """None when nothing waits; in-flight and finished rows do not count."""
        assert store.next_due_at() is None
        enqueue(store, make_delivery(1), now=T0)
        enqueue(store, make_delivery(2), now=T0 + 50)
        assert store.next_due_at() == T0
        store.claim_due(T0, 1)
        assert store.next_due_at() == T0 + 50
        store.record_attempts([(attempt(1, Outcome.RETRY, 500), T0 + 20)], T0 + 1)
        assert store.next_due_at() == T0 + 20
        store.claim_due(T0 + 100, 10)
        assert store.next_due_at() is None

    def test_excluded_endpoints_do_not_count(self, store: StateStore) -> None:
        """A paused endpoint's rows do not make the sender wake up early."""
        enqueue(store, make_delivery(1, "paused"), now=T0)
        enqueue(store, make_delivery(2, "open"), now=T0 + 30)
        assert store.next_due_at(["paused"]) == T0 + 30
        assert store.next_due_at(["paused", "open"]) is None

    def test_release_returns_claimed_rows_unsent(self, store: StateStore) -> None:
        """release puts in-flight rows back without counting an attempt."""
        enqueue(store, make_delivery(1), now=T0)
        [claimed] = store.claim_due(T0, 1)
        assert store.release([claimed.id], T0 + 60, T0 + 1) == 1
        record = store.get(claimed.id)
        assert record is not None
        assert (record.state, record.attempts, record.next_attempt_at) == (DeliveryState.PENDING, 0, T0 + 60)


class TestCounts:
    """counts() reports rows per endpoint and state, and the oldest waiting row."""

    def test_counts(self, store: StateStore) -> None:
        """Each endpoint gets its own record; oldest covers pending and in-flight rows."""
        assert store.counts() == []
        enqueue(store, make_delivery(1, "crm"), make_delivery(2, "crm"), now=T0)
        enqueue(store, make_delivery(3, "crm"), make_delivery(4, "erp"), now=T0 + 10)
        store.claim_due(T0 + 10, 3)  # 1, 2 (crm) and 3 or 4
        store.record_attempts([(attempt(2, Outcome.DELIVERED), None)], T0 + 11)
        counts = store.counts()
        assert [c.endpoint_id for c in counts] == ["crm", "erp"]
        crm, erp = counts
        assert (crm.pending + crm.in_flight, crm.delivered, crm.dead) == (2, 1, 0)
        assert crm.oldest_pending_created_at == T0
        assert erp.pending + erp.in_flight == 1
        assert erp.oldest_pending_created_at == T0 + 10

    def test_without_delivered(self, store: StateStore) -> None:
        """delivered=False (the service's gauges): delivered rows are not counted, the rest is."""
        enqueue(store, make_delivery(1), make_delivery(2), make_delivery(3), now=T0)
        store.claim_due(T0, 2)
        store.record_attempts([(attempt(1, Outcome.DELIVERED), None)], T0 + 1)
        store.record_attempts([(attempt(2, Outcome.DEAD, 400), None)], T0 + 1)
        (crm,) = store.counts(delivered=False)
        assert (crm.pending, crm.in_flight, crm.delivered, crm.dead) == (1, 0, 0, 1)
        assert crm.oldest_pending_created_at == T0
        assert store.counts()[0].delivered == 1

    def test_oldest_is_the_first_created_even_when_due_later(self, store: StateStore) -> None:
        """A retried row keeps its created_at: the oldest waiting row is still the first one."""
        enqueue(store, make_delivery(1), now=T0)
        enqueue(store, make_delivery(2), now=T0 + 5)
        store.claim_due(T0 + 5, 1)  # row 1
        store.record_attempts([(attempt(1, Outcome.RETRY, 503), T0 + 600)], T0 + 6)
        (crm,) = store.counts(delivered=False)
        assert crm.pending == 2 and crm.oldest_pending_created_at == T0

    def test_finished_endpoint_has_no_oldest(self, store: StateStore) -> None:
        """An endpoint with only delivered or dead rows reports no oldest waiting row."""
        enqueue(store, make_delivery(1))
        store.claim_due(T0, 1)
        store.record_attempts([(attempt(1, Outcome.DEAD, 400), None)], T0)
        assert store.counts() == [EndpointCounts("crm", dead=1)]


class TestPrune:
    """prune_delivered removes delivered rows past the retention, nothing else."""

    def test_prune(self, store: StateStore) -> None:
        """Old delivered rows go; recent delivered, pending and dead rows stay."""
        enqueue(store, *(make_delivery(i) for i in range(1, 6)))
        store.claim_due(T0, 4)
        store.record_attempts(
            [
                (attempt(1, Outcome.DELIVERED), None),
                (attempt(2, Outcome.DELIVERED), None),
                (attempt(4, Outcome.DEAD, 400), None),
            ],
            T0 + 10,
        )
        store.record_attempts([(attempt(3, Outcome.DELIVERED), None)], T0 + 100)
        assert store.prune_delivered(T0 + 50) == 2
        assert [store.get(i) is None for i in range(1, 6)] == [True, True, False, False, False]
        assert store.prune_delivered(T0 + 50) == 0

    def test_idempotency_lasts_as_long_as_the_row(self, store: StateStore) -> None:
        """After pruning, the key is free again and ids are not reused."""
        enqueue(store, make_delivery(1))
        store.claim_due(T0, 1)
        store.record_attempts([(attempt(1, Outcome.DELIVERED), None)], T0)
        store.prune_delivered(T0 + 1)
        (new_id,) = enqueue(store, make_delivery(1))
        assert new_id > 1


class TestErasure:
    """A delivered row keeps no lead data, and what is removed leaves the file, -wal and -shm."""

    PHONE = b"3125558642"

    def lead_delivery(self, lead_id: int) -> Delivery:
        return dataclasses.replace(
            make_delivery(lead_id),
            method="POST",
            url=f"https://user:pw@crm.example:8443/hook/s3cret?ph={self.PHONE.decode()}",
            body=b'{"phone_number":"' + self.PHONE + b'"}',
            content_type="application/json",
        )

    def traces(self, db_path: Path) -> list[str]:
        files = (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm"))
        return [f.name for f in files if f.exists() and self.PHONE in f.read_bytes()]

    def test_delivered_row_is_blanked_and_erased(self, sqlite_store: SqliteStore, db_path: Path) -> None:
        """On delivery the URL shrinks to its origin, the body goes; after truncate_wal no byte is left."""
        (delivery_id,) = enqueue(sqlite_store, self.lead_delivery(1))
        (claimed,) = sqlite_store.claim_due(T0, 10)
        assert self.traces(db_path)  # pending: the data is needed to send
        sqlite_store.record_attempts([(attempt(claimed.id, Outcome.DELIVERED), None)], T0 + 1)
        record = sqlite_store.get(delivery_id)
        assert record is not None and record.state is DeliveryState.DELIVERED
        assert (record.delivery.url, record.delivery.body) == ("https://crm.example:8443", b"")
        assert (record.delivery.lead_id, record.delivery.endpoint_id, record.last_status) == (1, "crm", 200)
        assert sqlite_store.truncate_wal() is True
        assert self.traces(db_path) == []
        assert Path(f"{db_path}-wal").stat().st_size == 0

    def test_dead_rows_keep_their_data_until_purged(self, sqlite_store: SqliteStore, db_path: Path) -> None:
        """A dead letter keeps URL and body (dlq retry needs them); purge and prune erase for good."""
        enqueue(sqlite_store, self.lead_delivery(1), self.lead_delivery(2))
        first, second = sqlite_store.claim_due(T0, 10)
        sqlite_store.record_attempts(
            [
                (attempt(first.id, Outcome.DELIVERED), None),
                (attempt(second.id, Outcome.DEAD, 404, "http_404"), None),
            ],
            T0 + 1,
        )
        sqlite_store.truncate_wal()
        assert self.traces(db_path) == ["state.db"]  # the dead letter's
        assert sqlite_store.purge_dead(ids=[second.id]) == 1
        assert sqlite_store.prune_delivered(T0 + 2) == 1
        assert sqlite_store.truncate_wal() is True
        assert self.traces(db_path) == []

    def test_truncate_wal_waits_for_no_reader(self, sqlite_store: SqliteStore, db_path: Path) -> None:
        """A reader on an older snapshot: False (retried later), never an error."""
        enqueue(sqlite_store, self.lead_delivery(1))
        with raw(db_path) as other:
            other.execute("BEGIN")
            other.execute("SELECT COUNT(*) FROM delivery").fetchone()
            enqueue(sqlite_store, self.lead_delivery(2))
            assert sqlite_store.truncate_wal() is False
            other.execute("COMMIT")
        assert sqlite_store.truncate_wal() is True


class TestDeadLetters:
    """Operators list, retry and purge dead rows by id or by filter."""

    @pytest.fixture
    def dead_store(self, store: StateStore) -> StateStore:
        """Rows 1-3 dead (crm, crm, erp) at T0+1, T0+2, T0+3; row 4 pending."""
        enqueue(store, make_delivery(1), make_delivery(2), make_delivery(3, "erp"), make_delivery(4))
        store.claim_due(T0, 3)
        for i in (1, 2, 3):
            store.record_attempts([(attempt(i, Outcome.DEAD, 404, "http_4xx"), None)], T0 + i)
        return store

    def test_list_dead_filters(self, dead_store: StateStore) -> None:
        """Filters combine; older_than compares with the time the row went dead."""
        assert [r.id for r in dead_store.list_dead()] == [1, 2, 3]
        assert [r.id for r in dead_store.list_dead(endpoint_id="crm")] == [1, 2]
        assert [r.id for r in dead_store.list_dead(lead_id=3)] == [3]
        assert [r.id for r in dead_store.list_dead(older_than=T0 + 2.5)] == [1, 2]
        assert [r.id for r in dead_store.list_dead(endpoint_id="crm", older_than=T0 + 1.5)] == [1]
        assert [r.id for r in dead_store.list_dead(limit=1)] == [1]
        first = dead_store.list_dead()[0]
        assert (first.state, first.last_status, first.last_error) == (DeliveryState.DEAD, 404, "http_4xx")

    def test_retry_by_ids(self, dead_store: StateStore) -> None:
        """Retried rows are pending, due now, with no attempts; other ids are ignored."""
        assert dead_store.retry_dead(T0 + 100, ids=[]) == 0
        assert dead_store.retry_dead(T0 + 100, ids=[1, 4, 99]) == 1
        record = dead_store.get(1)
        assert record is not None
        assert (record.state, record.attempts, record.next_attempt_at) == (
            DeliveryState.PENDING,
            0,
            T0 + 100,
        )
        assert record.created_at == T0 + 100  # a fresh retry budget
        assert [c.id for c in dead_store.claim_due(T0 + 100, 10)] == [4, 1]

    def test_requeue_resends_any_state_but_in_flight(self, dead_store: StateStore) -> None:
        """requeue (replay --force) resets delivered and dead rows; in-flight and unknown keys stay."""
        new_url = make_delivery(1)
        assert dead_store.requeue([new_url, make_delivery(77)], T0 + 200) == 1
        record = dead_store.get(1)
        assert record is not None
        assert (record.state, record.attempts, record.created_at, record.last_status) == (
            DeliveryState.PENDING,
            0,
            T0 + 200,
            0,
        )
        dead_store.claim_due(T0 + 300, 10)  # rows 1 and 4 now in flight
        assert dead_store.requeue([make_delivery(4)], T0 + 300) == 0

    def test_retry_by_filter(self, dead_store: StateStore) -> None:
        """A filter selects the dead rows to retry."""
        assert dead_store.retry_dead(T0 + 100, endpoint_id="crm") == 2
        assert [r.id for r in dead_store.list_dead()] == [3]
        assert dead_store.retry_dead(T0 + 100, older_than=T0 + 100) == 1
        assert dead_store.list_dead() == []

    def test_purge(self, dead_store: StateStore) -> None:
        """Purge deletes dead rows only, by ids or by filter."""
        assert dead_store.purge_dead(ids=[1, 4]) == 1
        assert dead_store.get(1) is None
        assert dead_store.get(4) is not None
        assert dead_store.purge_dead(lead_id=3) == 1
        assert [r.id for r in dead_store.list_dead()] == [2]

    def test_dead_summary(self, dead_store: StateStore) -> None:
        """Counts by endpoint and reason, and the rows that went dead last, newest first."""
        summary = dead_store.dead_summary(2)
        assert summary.groups == (DeadGroup("crm", "http_4xx", 2), DeadGroup("erp", "http_4xx", 1))
        assert [r.id for r in summary.recent] == [3, 2]
        dead_store.retry_dead(T0 + 100, ids=[3])
        assert dead_store.dead_summary(10).groups == (DeadGroup("crm", "http_4xx", 2),)

    def test_a_selector_is_required(self, dead_store: StateStore) -> None:
        """Retry and purge without ids or filters refuse to touch every row."""
        with pytest.raises(ValueError, match="filter"):
            dead_store.retry_dead(T0)
        with pytest.raises(ValueError, match="filter"):
            dead_store.purge_dead()
        assert len(dead_store.list_dead()) == 3


class TestMeta:
    """meta_get/meta_set keep small strings such as the source server identity."""

    def test_meta(self, store: StateStore) -> None:
        """A missing key is None; set overwrites."""
        assert store.meta_get("server_uuid") is None
        store.meta_set("server_uuid", "a")
        store.meta_set("server_uuid", "b")
        assert store.meta_get("server_uuid") == "b"


class TestErrors:
    """sqlite3 errors reach callers as StoreError saying what to do."""

    def test_locked_by_another_process(self, db_path: Path) -> None:
        """A write lock held elsewhere past busy_timeout names the other streamer."""
        s = SqliteStore(db_path, busy_timeout_s=0)
        s.open()
        try:
            with raw(db_path) as other:
                other.execute("BEGIN IMMEDIATE")
                with pytest.raises(StoreError, match="locked by another process"):
                    s.commit_batch([make_delivery(1)], P1, T0)
                other.execute("ROLLBACK")
            assert s.commit_batch([make_delivery(1)], P1, T0) == [1]
        finally:
            s.close()

    @pytest.mark.parametrize(
        ("code", "hint"),
        [
            (5, "locked by another process"),  # SQLITE_BUSY
            (13, "disk is full"),  # SQLITE_FULL
            (11, "corrupt"),  # SQLITE_CORRUPT
            (26, "corrupt"),  # SQLITE_NOTADB
            (8, "not writable"),  # SQLITE_READONLY
            (778, "I/O error"),  # SQLITE_IOERR_WRITE (an extended code)
            (1, "restart"),  # SQLITE_ERROR
        ],
    )
    def test_messages_say_what_to_do(self, code: int, hint: str) -> None:
        """Each class of SQLite failure maps to a StoreError with an action."""
        exc = sqlite3.OperationalError("boom")
        exc.sqlite_errorcode = code
        exc.sqlite_errorname = "SQLITE_X"
        error = store_error(exc, "commit deliveries", Path("/var/lib/x/state.db"))
        assert isinstance(error, StoreError)
        assert hint in str(error)
        assert "commit deliveries" in str(error)
        assert "/var/lib/x/state.db" in str(error)

    def test_unwritable_directory(self, tmp_path: Path) -> None:
        """A state path under a file (not a directory) raises StoreError at open."""
        blocker = tmp_path / "file"
        blocker.write_text("")
        with pytest.raises(StoreError, match="cannot create the state file"):
            SqliteStore(blocker / "state.db").open()


class TestBusy:
    """A write lock held by another process is waited out, bounded, reported; operator writes batch."""

    def test_waits_out_a_lock_held_past_the_busy_timeout(self, db_path: Path) -> None:
        """The write tries again after each busy slice, and succeeds once the lock is free."""
        waits: list[LockWait] = []
        s = SqliteStore(db_path, busy_timeout_s=0.05, busy_limit_s=60.0, on_lock_wait=waits.append)
        s.open()
        results: list[list[int]] = []
        try:
            with raw(db_path) as other:
                other.execute("BEGIN IMMEDIATE")
                writer = threading.Thread(
                    target=lambda: results.append(s.commit_batch([make_delivery(1)], P1, T0))
                )
                writer.start()
                deadline = time.monotonic() + 30
                while sum(not w.acquired for w in waits) < 3:  # three busy slices, then let go
                    assert time.monotonic() < deadline and writer.is_alive()
                    time.sleep(0.01)
                other.execute("ROLLBACK")
                writer.join(30)
            assert results == [[1]]
            assert s.load_checkpoint() == P1
        finally:
            s.close()
        action = "commit deliveries and checkpoint"
        busy = [w for w in waits if w.action == action and not w.acquired]
        done = [w for w in waits if w.action == action and w.acquired]
        assert len(busy) >= 3 and len(done) == 1 and done[0].waited_s >= busy[-1].waited_s
        stats = s.statistics()
        assert stats.busy_waits == len(busy) and stats.longest_lock_wait_s == done[0].waited_s

    def test_fails_loudly_past_the_limit(self, db_path: Path) -> None:
        """Busy past busy_limit_s: a StoreError naming the wait, the setting and the likely holders."""
        waits: list[LockWait] = []
        s = SqliteStore(db_path, busy_timeout_s=0.05, busy_limit_s=0.3, on_lock_wait=waits.append)
        s.open()
        try:
            with raw(db_path) as other:
                other.execute("BEGIN IMMEDIATE")
                with pytest.raises(
                    StoreError, match=r"waiting \d+\.\d s .*state\.busy_limit_s.*another process"
                ):
                    s.commit_batch([make_delivery(1)], P1, T0)
                other.execute("ROLLBACK")
            assert [w.acquired for w in waits][-1] is False and len(waits) >= 2
            assert s.commit_batch([make_delivery(1)], P1, T0) == [1]  # usable afterwards
        finally:
            s.close()

    def test_every_write_reports_its_wait(self, sqlite_store: SqliteStore, db_path: Path) -> None:
        """Uncontended writes report an acquired wait each (the lock-wait histogram's samples)."""
        waits: list[LockWait] = []
        s = SqliteStore(db_path, on_lock_wait=waits.append)
        s.open()
        try:
            s.commit_batch([make_delivery(1)], P1, T0)
            s.claim_due(T0, 10)
        finally:
            s.close()
        assert [(w.action, w.acquired) for w in waits] == [
            ("open", True),
            ("commit deliveries and checkpoint", True),
            ("claim due deliveries", True),
        ]

    def test_operator_writes_are_batched(self, sqlite_store: SqliteStore) -> None:
        """retry_dead, purge_dead and requeue change OPERATOR_BATCH_ROWS rows per transaction."""
        n = 2 * OPERATOR_BATCH_ROWS + 500
        deliveries = [make_delivery(i) for i in range(1, n + 1)]
        enqueue(sqlite_store, *deliveries)
        claimed = sqlite_store.claim_due(T0, n)
        sqlite_store.record_attempts(
            [(attempt(c.id, Outcome.DEAD, 404, "http_404"), None) for c in claimed], T0 + 1
        )
        before = sqlite_store.statistics().writes
        assert sqlite_store.retry_dead(T0 + 2, older_than=T0 + 2) == n
        assert sqlite_store.statistics().writes - before == 3
        (counts,) = sqlite_store.counts()
        assert (counts.pending, counts.dead) == (n, 0)

        before = sqlite_store.statistics().writes
        assert sqlite_store.requeue(deliveries, T0 + 3) == n
        assert sqlite_store.statistics().writes - before == 3

        claimed = sqlite_store.claim_due(T0 + 4, n)
        sqlite_store.record_attempts(
            [(attempt(c.id, Outcome.DEAD, 404, "http_404"), None) for c in claimed], T0 + 5
        )
        before = sqlite_store.statistics().writes
        assert sqlite_store.purge_dead(ids=list(range(1, n + 1))) == n
        assert sqlite_store.statistics().writes - before == 3
        assert sqlite_store.counts() == []


class TestSharedFile:
    """Stores of this process and other processes on one file see each other's writes."""

    def test_second_store_in_this_process_keeps_the_first_ones_locks(self, db_path: Path) -> None:
        """Opening a second store here (the service's schema store, check at start) must not drop
        the first one's SQLite locks: else another process, closing, deletes the WAL under it."""
        service = SqliteStore(db_path)
        service.open()
        second = SqliteStore(db_path)
        try:
            enqueue(service, make_delivery(1))
            second.open()
            code = (
                "import sys\nfrom cdc.store.sqlite import SqliteStore\n"
                "from cdc.records import Delivery, UrlSource\n"
                "s = SqliteStore(sys.argv[1]); s.open(); s.counts()\n"
                "if sys.argv[2] == 'write':\n"
                "    s.commit_batch([Delivery('vici1', 2, 101, 'crm', 'GET', 'https://crm.example/api?lead_id=2',"
                " UrlSource.VICIDIAL_LIST, 1)], None, 1.0)\n"
                "s.close()\n"
            )
            for action in ("read", "write"):  # `status`, then `replay`, as other processes
                subprocess.run([sys.executable, "-c", code, str(db_path), action], check=True, timeout=60)
            (counts,) = service.counts()
            assert counts.pending == 2  # the other process's row, seen through the WAL
        finally:
            second.close()
            service.close()


class TestAsyncStore:
    """AsyncStore runs store calls off the event loop, one at a time."""

    async def test_round_trip(self, db_path: Path) -> None:
        """Concurrent awaits are serialized on the worker thread; close stops it."""
        store = AsyncStore(SqliteStore(db_path))
        await store.open()
        ids = await asyncio.gather(
            *(store.commit_batch([make_delivery(i)], Position("b.000001", i), T0) for i in range(1, 21))
        )
        assert sorted(i for batch in ids for i in batch) == list(range(1, 21))
        assert await store.requeue_in_flight() == 0
        claimed = await store.claim_due(T0, 5)
        results = [(attempt(c.id, Outcome.DELIVERED), None) for c in claimed]
        assert await store.record_attempts(results, T0 + 1) == 5
        assert await store.next_due_at() == T0
        (counts,) = await store.counts()
        assert (counts.pending, counts.delivered) == (15, 5)
        assert await store.prune_delivered(T0 + 2) == 5
        await store.meta_set("k", "v")
        assert await store.meta_get("k") == "v"
        claimed = await store.claim_due(T0, 2)
        await store.record_attempts(
            [(attempt(c.id, Outcome.DEAD, 500, "http_500"), None) for c in claimed], T0
        )
        assert (await store.dead_summary(10)).groups == (DeadGroup("crm", "http_500", 2),)
        assert await store.retry_dead(T0 + 3, ids=[claimed[0].id]) == 1
        assert await store.purge_dead(endpoint_id="crm") == 1
        assert await store.dead_summary(10) == DeadSummary()
        checkpoint = await store.load_checkpoint()
        assert checkpoint is not None
        assert checkpoint.file == "b.000001"
        assert isinstance(store.store, SqliteStore)
        await store.close()
        with pytest.raises(RuntimeError):
            await store.counts()

    async def test_calls_run_on_one_worker_thread(self, db_path: Path) -> None:
        """Every call runs on the same thread, which is not the event loop's."""
        threads: set[str] = set()

        class Recording(SqliteStore):
            __slots__ = ()

            def counts(self, *, delivered: bool = True) -> list[EndpointCounts]:
                threads.add(threading.current_thread().name)
                return super().counts(delivered=delivered)

        store = AsyncStore(Recording(db_path))
        await store.open()
        await asyncio.gather(*(store.counts() for _ in range(10)))
        await store.close()
        assert len(threads) == 1
        assert threads.pop().startswith("cdc-store")


class TestSchemaHistory:
    """The reader's schema history (migration 2): stored per database, pruned at the checkpoint."""

    def test_added_entries_come_back_in_binlog_order(self, store: StateStore) -> None:
        """Entries round-trip; the same (table, position) is replaced, not duplicated."""
        store.add_schema_history("asterisk", [("t", P2, "[2]"), ("t", P1, "[1]")], T0)
        store.add_schema_history("asterisk", [("t", P2, "[2b]")], T0 + 1)
        store.add_schema_history("other", [("t", P1, "[x]")], T0)
        assert store.schema_history("asterisk") == [
            ("t", Position(P1.file, P1.pos), "[1]"),
            ("t", Position(P2.file, P2.pos), "[2b]"),
        ]

    def test_prune_keeps_the_definition_in_force_at_the_checkpoint(self, store: StateStore) -> None:
        """What a restart from the checkpoint or later can need stays; older entries go."""
        p0 = Position("mysql-bin.000006", 100)
        store.add_schema_history("asterisk", [("t", p0, "[0]"), ("t", P1, "[1]"), ("t", P2, "[2]")], T0)
        store.add_schema_history("asterisk", [("u", p0, "[u]")], T0)
        assert store.prune_schema_history("asterisk", Position(P1.file, P1.pos + 10)) == 1
        assert [(t, p.pos) for t, p, _ in store.schema_history("asterisk")] == [
            ("u", 100),
            ("t", P1.pos),
            ("t", P2.pos),
        ]

    def test_a_second_connection_writes_beside_the_service(
        self, sqlite_store: SqliteStore, db_path: Path
    ) -> None:
        """The reader's own sqlite_store on the same file: history and outbox both durable."""
        reader_side = SqliteStore(db_path)
        reader_side.open()
        try:
            reader_side.add_schema_history("asterisk", [("t", P1, "[1]")], T0)
            sqlite_store.commit_batch([make_delivery()], P2, T0)
        finally:
            reader_side.close()
        assert [t for t, _, _ in sqlite_store.schema_history("asterisk")] == ["t"]
        assert sqlite_store.load_checkpoint() == P2
