"""Charset edges: MariaDB charset names to Python codecs, lossless decoding, and the
bytes VICIdial's PHP connection gets back.

Pure, no I/O. Importing the module registers, once, the codecs it names:

- ``mariadb_latin1``: MariaDB's ``latin1``, which is Windows-1252 with the five bytes
  cp1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) mapped to the C1 controls of
  the same number. Every byte decodes, so a latin1 column never loses data.
- ``lossless_<codec>``: the same decoding with ``surrogateescape`` forced, for the
  binlog library, which decodes with ``errors="strict"`` and would otherwise fail.

Text that did not decode keeps its bytes as lone surrogates U+DC80..U+DCFF (see
:func:`cdc.records.has_undecodable`); :func:`encode_for_connection` gives them back.
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "KEEP_BYTES",
    "MARIADB_LATIN1",
    "connection_codec",
    "decode_text",
    "encodable_charsets",
    "encode_for_connection",
    "lossless_codec",
    "python_codec",
]

#: Python codec name of MariaDB's ``latin1``.
MARIADB_LATIN1: Final = "mariadb_latin1"

#: Returned by :func:`lossless_codec` for ``binary`` and for charsets Python cannot
#: decode. No codec answers to it: the binlog library catches the ``LookupError`` and
#: keeps the value as ``bytes``, which is what we want there.
KEEP_BYTES: Final = "cdc_keep_bytes"

_LOSSLESS_PREFIX: Final = "lossless_"
_CONNECTION_ERRORS: Final = "cdc_mariadb_convert"

#: MariaDB charset name -> Python codec. ``binary`` is ASCII: with surrogateescape
#: every other byte survives as an escape and encodes back to itself, which is what
#: MariaDB sends for a binary column whatever the connection charset.
_MARIADB_CODECS: Final[dict[str, str]] = {
    "armscii8": "",  # no Python codec
    "ascii": "ascii",
    "big5": "big5",
    "binary": "ascii",
    "cp1250": "cp1250",
    "cp1251": "cp1251",
    "cp1256": "cp1256",
    "cp1257": "cp1257",
    "cp850": "cp850",
    "cp852": "cp852",
    "cp866": "cp866",
    "cp932": "cp932",
    "dec8": "",
    "eucjpms": "",  # eucJP-ms (cp51932) has no exact Python codec
    "euckr": "euc_kr",
    "gb18030": "gb18030",
    "gb2312": "gb2312",
    "gbk": "gbk",
    "geostd8": "",
    "greek": "iso8859_7",
    "hebrew": "iso8859_8",
    "hp8": "",
    "keybcs2": "",
    "koi8r": "koi8_r",
    "koi8u": "koi8_u",
    "latin1": MARIADB_LATIN1,
    "latin2": "iso8859_2",
    "latin5": "iso8859_9",
    "latin7": "iso8859_13",
    "macce": "mac_latin2",
    "macroman": "mac_roman",
    "sjis": "shift_jis",
    "swe7": "",
    "tis620": "tis_620",
    "ucs2": "utf_16_be",
    "ujis": "euc_jp",
    "utf16": "utf_16_be",
    "utf16le": "utf_16_le",
    "utf32": "utf_32_be",
    "utf8": "utf-8",
    "utf8mb3": "utf-8",
    "utf8mb4": "utf-8",
}

#: Names PyMySQL (``Charset.encoding``) and callers use for the same charsets.
_ALIASES: Final[dict[str, str]] = {
    "cp1252": MARIADB_LATIN1,  # PyMySQL's name for MariaDB latin1
    MARIADB_LATIN1: MARIADB_LATIN1,
    "utf-8": "utf-8",
    "utf_8": "utf-8",
    "koi8_r": "koi8_r",
    "koi8_u": "koi8_u",
}

#: Fixed-width encodings whose decoder cannot always express a bad unit with
#: surrogateescape (it escapes bytes >= 0x80 only); see :func:`_decode`.
_WIDE: Final = frozenset({"utf_16_be", "utf_16_le", "utf_32_be"})


def python_codec(mysql_charset: str) -> str:
    """The Python codec for a MariaDB charset name (or a PyMySQL encoding name)."""
    name = mysql_charset.strip().lower()
    codec = _MARIADB_CODECS.get(name)
    if codec is None:
        codec = _ALIASES.get(name)
    if codec is None:
        raise ValueError(f"unknown MariaDB charset {mysql_charset!r}")
    if not codec:
        raise ValueError(
            f"MariaDB charset {mysql_charset!r} has no Python codec: its text cannot be decoded here"
        )
    return codec


def encodable_charsets() -> list[str]:
    """MariaDB charset names :func:`python_codec` accepts (``reader.server_charset`` values)."""
    return sorted(name for name, codec in _MARIADB_CODECS.items() if codec)


def lossless_codec(mysql_charset: str) -> str:
    """A codec name for the binlog library that never fails and never drops a byte.

    The library decodes with ``errors="strict"``; the returned codec ignores that and
    uses surrogateescape. ``binary`` and charsets without a Python codec get
    :data:`KEEP_BYTES`, so their values stay ``bytes``.
    """
    name = mysql_charset.strip().lower()
    if name == "binary":
        return KEEP_BYTES
    try:
        codec = python_codec(name)
    except ValueError:
        return KEEP_BYTES
    return _LOSSLESS_PREFIX + codecs.lookup(codec).name.replace("-", "_")


def decode_text(raw: bytes, mysql_charset: str) -> str:
    """Decode a stored value; bytes that do not decode become surrogate escapes."""
    return _decode(raw, python_codec(mysql_charset))


def connection_codec(use_non_latin: bool, server_charset: str = "latin1") -> str:
    """The codec of VICIdial's PHP connection to MariaDB.

    ``use_non_latin=1`` makes it UTF-8; otherwise PHP keeps the server's default
    charset (``character_set_server``), latin1 on many installs.
    """
    return "utf-8" if use_non_latin else python_codec(server_charset)


def encode_for_connection(text: str, codec: str) -> bytes:
    """The bytes PHP reads back for ``text`` over a connection in ``codec``.

    MariaDB turns each character the connection charset cannot hold into ``?``;
    surrogate escapes are bytes that never decoded, so they go back as they were.
    """
    return text.encode(codec, _CONNECTION_ERRORS)


def _decode(raw: bytes, codec: str) -> str:
    try:
        return raw.decode(codec, "surrogateescape")
    except UnicodeDecodeError:
        if codecs.lookup(codec).name.replace("-", "_") not in _WIDE:
            raise
        # A broken UTF-16/32 unit made only of ASCII bytes cannot be escaped: keep
        # the whole value byte by byte rather than lose any of it.
        return raw.decode("ascii", "surrogateescape")


def _convert_errors(exc: UnicodeError) -> tuple[bytes, int]:
    """Error handler for :func:`encode_for_connection` (``?`` or the escaped byte)."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    out = bytearray()
    for ch in exc.object[exc.start : exc.end]:
        cp = ord(ch)
        out += bytes((cp - 0xDC00,)) if 0xDC80 <= cp <= 0xDCFF else b"?"
    return bytes(out), exc.end


def _latin1_decoding_table() -> str:
    chars = []
    for byte in range(256):
        try:
            chars.append(bytes((byte,)).decode("cp1252"))
        except UnicodeDecodeError:
            chars.append(chr(byte))  # the five undefined bytes: C1 controls
    return "".join(chars)


_LATIN1_DECODING: Final = _latin1_decoding_table()
_LATIN1_ENCODING: Final = codecs.charmap_build(_LATIN1_DECODING)


def _latin1_encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
    return codecs.charmap_encode(text, errors, _LATIN1_ENCODING)


def _latin1_decode(data: Buffer, errors: str = "strict") -> tuple[str, int]:
    return codecs.charmap_decode(data, errors, _LATIN1_DECODING)


class _Latin1IncrementalEncoder(codecs.IncrementalEncoder):
    def encode(self, input: str, final: bool = False) -> bytes:
        return _latin1_encode(input, self.errors)[0]


class _Latin1IncrementalDecoder(codecs.IncrementalDecoder):
    def decode(self, input: Buffer, final: bool = False) -> str:
        return _latin1_decode(input, self.errors)[0]


def _lossless_info(name: str, base: str) -> codecs.CodecInfo:
    info = codecs.lookup(base)

    def decode(data: Buffer, errors: str = "strict") -> tuple[str, int]:
        raw = bytes(data)
        return _decode(raw, base), len(raw)

    def encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
        return info.encode(text, "surrogateescape")

    return codecs.CodecInfo(encode, decode, name=name)


def _search(name: str) -> codecs.CodecInfo | None:
    if name == MARIADB_LATIN1:
        return codecs.CodecInfo(
            _latin1_encode,
            _latin1_decode,
            name=MARIADB_LATIN1,
            incrementalencoder=_Latin1IncrementalEncoder,
            incrementaldecoder=_Latin1IncrementalDecoder,
        )
    if name.startswith(_LOSSLESS_PREFIX):
        base = name[len(_LOSSLESS_PREFIX) :]
        known = {c.replace("-", "_") for c in _MARIADB_CODECS.values() if c}
        if base in known:
            return _lossless_info(name, base)
    return None


def _register() -> None:
    """Register the codecs once, even if this module is imported again (reload)."""
    try:
        codecs.lookup(MARIADB_LATIN1)
    except LookupError:
        codecs.register(_search)
    codecs.register_error(_CONNECTION_ERRORS, _convert_errors)


_register()
