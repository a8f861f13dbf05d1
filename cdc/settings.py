"""The settings cache: what :mod:`cdc.resolve` needs to know about the dialer's setup.

Loaded once from startup SELECTs (:meth:`SettingsCache.load`), then kept current by
the same tables' row changes (:meth:`SettingsCache.apply`). :meth:`SettingsCache.snapshot`
hands out an immutable :class:`SettingsSnapshot`, rebuilt only after a change touched
settings, so readers never see a half-applied change.

Row shape
    Every row given to :meth:`SettingsCache.load` is a ``Mapping[str, Value]`` keyed by
    column name, normalized like a :class:`~cdc.records.RowChange` image (ENUMs as
    labels, text as ``str``). The columns read are listed in :data:`URL_COLUMNS`,
    :data:`LIST_COLUMNS`, :data:`FIELD_COLUMNS` and :data:`SYSTEM_COLUMNS`; extra columns
    are ignored. Update changes are expected with full row images
    (``binlog_row_image=FULL``, MariaDB's default).

URL precedence (:meth:`SettingsSnapshot.url_for`), per lead by its ``list_id``
    1. The list level: the config file's ``[urls.lists]`` entry when present (even
       blank), else VICIdial's ``vicidial_url_multi`` list row. ``---DISABLED---`` means
       no request (``LIST_DISABLED``) even when the system level has a URL; any other
       non-blank value is the URL.
    2. A blank or absent list value falls back to the system level: the config file's
       ``[urls] system`` when present, else VICIdial's ``-SYSTEM-API-NEWLEAD-`` row.
    3. Nothing (blank, absent or ``---DISABLED---`` at the system level) → ``NO_URL``.

    Several VICIdial rows for the same level (which VICIdial's screens do not create)
    resolve to the one with the lowest ``url_id``. The ``active`` column is ignored,
    as VICIdial ignores it for ``apinewlead``.

Custom fields
    Rows of ``vicidial_lists_fields`` with ``field_duplicate='Y'`` and the types that
    never hold data (``DISPLAY``, ``SCRIPT``) are left out: ``add_lead`` skips them too.
"""

from __future__ import annotations

import types
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .config import UrlsConfig

from .records import Op, RowChange, SkipReason, UrlSource, Value
from .records import as_int as _int
from .records import as_text as _text
from .vicidial import (
    LIST_FIELDS_TABLE,
    LISTS_TABLE,
    SYSTEM_CAMPAIGN_ID,
    SYSTEM_SETTINGS_TABLE,
    URL_MULTI_TABLE,
    URL_TYPE,
    is_disabled,
    long_enough,
    strip_var,
)

#: The tables whose row changes :meth:`SettingsCache.apply` consumes.
SETTINGS_TABLES = frozenset({URL_MULTI_TABLE, LISTS_TABLE, LIST_FIELDS_TABLE, SYSTEM_SETTINGS_TABLE})
#: Columns read from each table (for the startup SELECTs; never ``SELECT *``).
URL_COLUMNS = ("url_id", "campaign_id", "entry_type", "url_type", "url_address")
LIST_COLUMNS = ("list_id", "list_name", "list_description", "campaign_id")
FIELD_COLUMNS = (
    "list_id",
    "field_label",
    "field_type",
    "field_encrypt",
    "field_duplicate",
)
SYSTEM_COLUMNS = ("db_schema_version", "use_non_latin", "custom_fields_enabled")

_NO_DATA_FIELD_TYPES = frozenset({"DISPLAY", "SCRIPT"})

Row = Mapping[str, Value]


@dataclass(frozen=True, slots=True)
class ListInfo:
    """The ``vicidial_lists`` columns the URL tokens use."""

    list_id: int
    list_name: str
    list_description: str
    campaign_id: str


@dataclass(frozen=True, slots=True)
class CustomField:
    """One custom field of a list (a column of ``custom_<list_id>``)."""

    list_id: int
    label: str
    encrypted: bool


@dataclass(frozen=True, slots=True)
class SystemInfo:
    """The ``system_settings`` values that matter here."""

    db_schema_version: int
    use_non_latin: bool
    custom_fields_enabled: bool


#: Until ``system_settings`` is loaded: hold for custom fields rather than lose them.
DEFAULT_SYSTEM = SystemInfo(db_schema_version=0, use_non_latin=False, custom_fields_enabled=True)


@dataclass(frozen=True, slots=True)
class UrlOverrides:
    """URLs from our config file (``[urls]``); ``---DISABLED---`` allowed."""

    system: str | None = None
    lists: Mapping[int, str] = field(default_factory=lambda: types.MappingProxyType({}))

    @classmethod
    def of(cls, urls: UrlsConfig) -> UrlOverrides:
        """The ``[urls]`` section of a config, as the resolver takes it."""
        return cls(system=urls.system, lists=dict(urls.lists))


@dataclass(frozen=True, slots=True)
class ListUrlSource:
    """Which URL applies to one list, for startup logging: host only, never the URL.

    ``list_id`` is ``None`` for the system level (lists without their own value).
    """

    list_id: int | None
    source: UrlSource | None
    url_host: str
    skip: SkipReason | None


@dataclass(frozen=True, slots=True)
class SettingsStatistics:
    lists: int
    lists_with_url: int
    lists_with_custom_fields: int
    system_url_defined: bool
    changes_applied: int
    rebuilds: int
    ignored_rows: int


@dataclass(frozen=True, slots=True, eq=False)
class SettingsSnapshot:
    """An immutable view of the settings: all that :func:`cdc.resolve.resolve` reads."""

    #: ``url_address`` of VICIdial's system row, ``None`` when there is none.
    system_url: str | None
    #: ``url_address`` of VICIdial's list rows, by list_id.
    list_urls: Mapping[int, str]
    lists: Mapping[int, ListInfo]
    fields: Mapping[int, tuple[CustomField, ...]]
    system: SystemInfo
    overrides: UrlOverrides
    #: Bumped at every rebuild; equal versions mean equal contents.
    version: int = 0

    def url_for(self, list_id: int) -> tuple[str | None, UrlSource | None, SkipReason | None]:
        """(template, where it came from, None) or (None, None, why there is no URL)."""
        if list_id in self.overrides.lists:
            return _precedence(self.overrides.lists[list_id], UrlSource.CONFIG_LIST, self._system_level())
        return _precedence(self.list_urls.get(list_id), UrlSource.VICIDIAL_LIST, self._system_level())

    def vicidial_url_for(self, list_id: int) -> str | None:
        """The template VICIdial's own add_lead resolves: its rows only, never our config."""
        system = _precedence(self.system_url, UrlSource.VICIDIAL_SYSTEM, _NO_URL, SkipReason.NO_URL)
        return _precedence(self.list_urls.get(list_id), UrlSource.VICIDIAL_LIST, system)[0]

    def _system_level(self) -> tuple[str | None, UrlSource | None, SkipReason | None]:
        value: str | None
        if self.overrides.system is not None:
            value, source = self.overrides.system, UrlSource.CONFIG_SYSTEM
        else:
            value, source = self.system_url, UrlSource.VICIDIAL_SYSTEM
        return _precedence(value, source, _NO_URL, SkipReason.NO_URL)

    def list_info(self, list_id: int) -> ListInfo | None:
        return self.lists.get(list_id)

    def custom_fields(self, list_id: int) -> tuple[CustomField, ...]:
        return self.fields.get(list_id, ())

    def encrypted_fields(self, list_id: int) -> frozenset[str]:
        return frozenset(f.label for f in self.fields.get(list_id, ()) if f.encrypted)

    def custom_field_lists(self) -> frozenset[int]:
        """Lists with custom fields: their ``custom_<list_id>`` tables are to be watched."""
        return frozenset(self.fields)

    def sources(self) -> tuple[ListUrlSource, ...]:
        """The system level, then every known list (sorted), with the URL that applies."""
        out = [_source_of(None, *self._system_level())]
        known = set(self.lists) | set(self.list_urls) | set(self.overrides.lists)
        for list_id in sorted(known):
            out.append(_source_of(list_id, *self.url_for(list_id)))
        return tuple(out)


_NO_URL: tuple[None, None, SkipReason] = (None, None, SkipReason.NO_URL)


def _precedence(
    value: str | None,
    source: UrlSource,
    otherwise: tuple[str | None, UrlSource | None, SkipReason | None],
    disabled: SkipReason = SkipReason.LIST_DISABLED,
) -> tuple[str | None, UrlSource | None, SkipReason | None]:
    """VICIdial's rule for one level: an empty value falls through to ``otherwise``.

    As ``non_agent_api.php`` does: a value counts when it is not empty (``strlen > 0``, no
    trim), ``---DISABLED---`` stops here, and the length rule applies to the template as
    stored, before ``VAR`` is stripped and tokens are substituted.
    """
    if not value:
        return otherwise
    if is_disabled(value):
        return None, None, disabled
    if not long_enough(value):
        return None, None, SkipReason.URL_TOO_SHORT
    return value, source, None


def _source_of(
    list_id: int | None, url: str | None, source: UrlSource | None, skip: SkipReason | None
) -> ListUrlSource:
    return ListUrlSource(list_id=list_id, source=source, url_host=url_host(url), skip=skip)


def url_host(template: str | None) -> str:
    """The host part of a URL template ("" when there is none): safe to log."""
    if not template:
        return ""
    text = strip_var(template.strip())
    try:
        return urllib.parse.urlsplit(text).hostname or ""
    except ValueError:
        return ""


@dataclass(frozen=True, slots=True)
class _UrlRow:
    list_id: int | None  # None: the system row
    address: str


_FieldKey = tuple[int, str]  # (list_id, field_label)
_K = TypeVar("_K")
_V = TypeVar("_V")


class SettingsCache:
    """Holds the settings; the single writer. See the module docstring for semantics."""

    def __init__(self, overrides: UrlOverrides | None = None) -> None:
        self._overrides = overrides if overrides is not None else UrlOverrides()
        self._urls: dict[int, _UrlRow] = {}  # by url_id, apinewlead rows only
        self._lists: dict[int, ListInfo] = {}
        self._fields: dict[_FieldKey, CustomField] = {}
        self._system = DEFAULT_SYSTEM
        self._snapshot: SettingsSnapshot | None = None
        self._version = 0
        self._changes_applied = 0
        self._rebuilds = 0
        self._ignored_rows = 0

    # -- writing -----------------------------------------------------------------------

    def set_overrides(self, overrides: UrlOverrides) -> None:
        """Replace the config-file URLs (at start, or on a config reload)."""
        self._overrides = overrides
        self._snapshot = None

    def load(
        self,
        url_rows: Iterable[Row],
        list_rows: Iterable[Row],
        field_rows: Iterable[Row],
        system_row: Row | None,
    ) -> None:
        """Replace everything with the startup SELECT results."""
        self._urls.clear()
        self._lists.clear()
        self._fields.clear()
        for row in url_rows:
            self._put_url(row)
        for row in list_rows:
            self._put_list(row)
        for row in field_rows:
            self._put_field(row)
        self._system = _system_info(system_row) if system_row is not None else DEFAULT_SYSTEM
        self._snapshot = None

    def apply(self, change: RowChange) -> bool:
        """Apply one row change; True when it changed what a snapshot shows."""
        handler = _HANDLERS.get(change.table)
        if handler is None:
            return False
        changed = handler(self, change)
        if changed:
            self._changes_applied += 1
            self._snapshot = None
        return changed

    def _apply_url(self, change: RowChange) -> bool:
        return _apply_keyed(self._urls, _url_key, self._put_url, change)

    def _apply_list(self, change: RowChange) -> bool:
        return _apply_keyed(self._lists, _list_key, self._put_list, change)

    def _apply_field(self, change: RowChange) -> bool:
        return _apply_keyed(self._fields, _field_key, self._put_field, change)

    def _apply_system(self, change: RowChange) -> bool:
        if change.op is Op.DELETE or change.after is None:
            return False
        new = _system_info(change.after)
        if new == self._system:
            return False
        self._system = new
        return True

    def _put_url(self, row: Row) -> None:
        """Store ``row`` when it is an apinewlead system or list row."""
        url_id = _url_key(row)
        if url_id is None:
            self._ignored_rows += 1
            return
        if _text(row.get("url_type")) != URL_TYPE:
            return
        campaign_id = _text(row.get("campaign_id"))
        entry_type = _text(row.get("entry_type"))
        address = _text(row.get("url_address"))
        if entry_type == "system" and campaign_id == SYSTEM_CAMPAIGN_ID:
            self._urls[url_id] = _UrlRow(None, address)
            return
        # VICIdial compares campaign_id to the list_id as text: '0101' is not list 101.
        if entry_type == "list" and campaign_id.isdigit() and str(int(campaign_id)) == campaign_id:
            self._urls[url_id] = _UrlRow(int(campaign_id), address)

    def _put_list(self, row: Row) -> None:
        list_id = _list_key(row)
        if list_id is None:
            self._ignored_rows += 1
            return
        self._lists[list_id] = ListInfo(
            list_id=list_id,
            list_name=_text(row.get("list_name")),
            list_description=_text(row.get("list_description")),
            campaign_id=_text(row.get("campaign_id")),
        )

    def _put_field(self, row: Row) -> None:
        key = _field_key(row)
        if key is None:
            if _int(row.get("list_id")) is None or not _text(row.get("field_label")):
                self._ignored_rows += 1
            return
        encrypted = _text(row.get("field_encrypt")).upper() == "Y"
        self._fields[key] = CustomField(list_id=key[0], label=key[1], encrypted=encrypted)

    # -- reading -----------------------------------------------------------------------

    def snapshot(self) -> SettingsSnapshot:
        """The current settings; the same object until a change touches them."""
        if self._snapshot is None:
            self._snapshot = self._build()
        return self._snapshot

    def _build(self) -> SettingsSnapshot:
        system_url: str | None = None
        list_urls: dict[int, str] = {}
        for url_id in sorted(self._urls, reverse=True):  # lowest url_id written last, wins
            row = self._urls[url_id]
            if row.list_id is None:
                system_url = row.address
            else:
                list_urls[row.list_id] = row.address
        grouped: dict[int, list[CustomField]] = {}
        for cf in self._fields.values():
            grouped.setdefault(cf.list_id, []).append(cf)
        fields = {
            list_id: tuple(sorted(set(group), key=lambda f: (f.label, f.encrypted)))
            for list_id, group in grouped.items()
        }
        self._version += 1
        self._rebuilds += 1
        return SettingsSnapshot(
            system_url=system_url,
            list_urls=types.MappingProxyType(list_urls),
            lists=types.MappingProxyType(dict(self._lists)),
            fields=types.MappingProxyType(fields),
            system=self._system,
            overrides=UrlOverrides(
                system=self._overrides.system,
                lists=types.MappingProxyType(dict(self._overrides.lists)),
            ),
            version=self._version,
        )

    def statistics(self) -> SettingsStatistics:
        snap = self.snapshot()
        with_url = sum(1 for list_id in snap.lists if snap.url_for(list_id)[0] is not None)
        return SettingsStatistics(
            lists=len(snap.lists),
            lists_with_url=with_url,
            lists_with_custom_fields=len(snap.fields),
            system_url_defined=snap.system_url is not None or snap.overrides.system is not None,
            changes_applied=self._changes_applied,
            rebuilds=self._rebuilds,
            ignored_rows=self._ignored_rows,
        )


_HANDLERS = {
    URL_MULTI_TABLE: SettingsCache._apply_url,
    LISTS_TABLE: SettingsCache._apply_list,
    LIST_FIELDS_TABLE: SettingsCache._apply_field,
    SYSTEM_SETTINGS_TABLE: SettingsCache._apply_system,
}


def _apply_keyed(
    store: dict[_K, _V],
    key_of: Callable[[Row], _K | None],
    put: Callable[[Row], None],
    change: RowChange,
) -> bool:
    """Remove the before-image's entry, store the after-image; True when ``store`` changed."""
    keys = {
        key
        for image in (change.before, change.after)
        if image is not None and (key := key_of(image)) is not None
    }
    prior = {key: store.get(key) for key in keys}
    if change.op is not Op.INSERT and change.before is not None:
        old_key = key_of(change.before)
        if old_key is not None:
            store.pop(old_key, None)
    if change.op is not Op.DELETE and change.after is not None:
        put(change.after)
    return any(store.get(key) != prior[key] for key in keys)


def _url_key(row: Row) -> int | None:
    return _int(row.get("url_id"))


def _list_key(row: Row) -> int | None:
    return _int(row.get("list_id"))


def _system_info(row: Row) -> SystemInfo:
    return SystemInfo(
        db_schema_version=_int(row.get("db_schema_version")) or 0,
        use_non_latin=_flag(row.get("use_non_latin")),
        custom_fields_enabled=_flag(row.get("custom_fields_enabled")),
    )


def _field_key(row: Row) -> _FieldKey | None:
    """(list_id, field_label) of a field that holds data; None for the others.

    Keyed by label, not ``field_id``: the label is the column name, unique per list
    for data fields, and present in every image (the startup SELECT may omit the id).
    """
    list_id = _int(row.get("list_id"))
    label = _text(row.get("field_label"))
    if list_id is None or not label:
        return None
    if _text(row.get("field_duplicate")).upper() == "Y":
        return None
    if _text(row.get("field_type")).upper() in _NO_DATA_FIELD_TYPES:
        return None
    return (list_id, label)


def _flag(value: Value) -> bool:
    """ENUM('0','1') / ENUM('N','Y') / TINYINT as a bool."""
    if isinstance(value, int):
        return value != 0
    return _text(value).strip().upper() in ("1", "Y")
