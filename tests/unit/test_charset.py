"""cdc.charset: MariaDB charsets, lossless decoding, PHP connection bytes."""

from __future__ import annotations

import codecs
import importlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdc import charset
from cdc.charset import (
    KEEP_BYTES,
    MARIADB_LATIN1,
    connection_codec,
    decode_text,
    encode_for_connection,
    lossless_codec,
    python_codec,
)
from cdc.records import has_undecodable

#: The bytes cp1252 leaves undefined, which MariaDB's latin1 maps to C1 controls.
UNDEFINED_IN_CP1252 = (0x81, 0x8D, 0x8F, 0x90, 0x9D)


class TestMariadbLatin1:
    """mariadb_latin1 is cp1252 plus the five C1 controls, and every byte round-trips."""

    def test_every_byte_decodes_and_round_trips(self) -> None:
        """MariaDB's latin1 decodes all 256 bytes and encodes them back unchanged."""
        raw = bytes(range(256))
        text = raw.decode(MARIADB_LATIN1)
        assert len(text) == 256
        assert text.encode(MARIADB_LATIN1) == raw

    @pytest.mark.parametrize("byte", UNDEFINED_IN_CP1252)
    def test_undefined_bytes_are_c1_controls(self, byte: int) -> None:
        """Bytes cp1252 leaves undefined decode to the C1 control of the same number, and back."""
        assert bytes([byte]).decode(MARIADB_LATIN1) == chr(byte)
        assert chr(byte).encode(MARIADB_LATIN1) == bytes([byte])

    def test_defined_bytes_match_cp1252(self) -> None:
        """Every byte cp1252 defines decodes as in cp1252."""
        for byte in set(range(256)) - set(UNDEFINED_IN_CP1252):
            assert bytes([byte]).decode(MARIADB_LATIN1) == bytes([byte]).decode("cp1252")

    @pytest.mark.parametrize(
        ("text", "raw"),
        [("\u20ac", b"\x80"), ("\u201a", b"\x82"), ("\u0178", b"\x9f"), ("\u00ff", b"\xff")],
    )
    def test_windows_1252_points(self, text: str, raw: bytes) -> None:
        """Windows-1252 characters encode to their single latin1 byte."""
        assert text.encode(MARIADB_LATIN1) == raw

    def test_unrepresentable_strict_raises(self) -> None:
        """A character latin1 cannot hold raises in strict mode."""
        with pytest.raises(UnicodeEncodeError):
            "\u0080".encode(MARIADB_LATIN1)

    def test_incremental(self) -> None:
        """The codec is registered with incremental encoder and decoder."""
        info = codecs.lookup(MARIADB_LATIN1)
        assert info.name == MARIADB_LATIN1
        assert info.incrementaldecoder is not None
        assert info.incrementalencoder is not None
        assert info.incrementaldecoder().decode(b"\x80\x81") == "\u20ac\x81"
        assert info.incrementalencoder().encode("\u20ac\x81") == b"\x80\x81"

    def test_registration_idempotent(self) -> None:
        """Registering the codec again (module reload) is harmless."""
        importlib.reload(charset)
        importlib.reload(charset)
        assert b"\x80".decode(MARIADB_LATIN1) == "\u20ac"
        assert encode_for_connection("\U0001f600", MARIADB_LATIN1) == b"?"


class TestPythonCodec:
    """MariaDB (and PyMySQL) charset names map to Python codecs; unknown names fail loudly."""

    @pytest.mark.parametrize(
        ("name", "codec"),
        [
            ("latin1", MARIADB_LATIN1),
            ("LATIN1", MARIADB_LATIN1),
            ("cp1252", MARIADB_LATIN1),
            ("utf8", "utf-8"),
            ("utf8mb3", "utf-8"),
            ("utf8mb4", "utf-8"),
            ("utf-8", "utf-8"),
            ("ascii", "ascii"),
            ("binary", "ascii"),
            ("cp1250", "cp1250"),
            ("latin2", "iso8859_2"),
            ("ucs2", "utf_16_be"),
            ("utf16", "utf_16_be"),
            ("utf16le", "utf_16_le"),
            ("utf32", "utf_32_be"),
            ("koi8r", "koi8_r"),
            ("koi8_r", "koi8_r"),
            ("greek", "iso8859_7"),
            ("sjis", "shift_jis"),
        ],
    )
    def test_known(self, name: str, codec: str) -> None:
        """Each MariaDB charset name maps to its Python codec."""
        assert python_codec(name) == codec
        codecs.lookup(codec)

    @pytest.mark.parametrize("name", ["klingon", "", "latin-1"])
    def test_unknown_raises(self, name: str) -> None:
        """An unknown MariaDB charset is refused with a clear error."""
        with pytest.raises(ValueError, match="unknown MariaDB charset"):
            python_codec(name)

    @pytest.mark.parametrize("name", ["swe7", "dec8", "hp8", "armscii8"])
    def test_no_python_codec_raises(self, name: str) -> None:
        """A MariaDB charset without a Python codec is refused with a clear error."""
        with pytest.raises(ValueError, match="has no Python codec"):
            python_codec(name)


class TestDecodeText:
    """decode_text never fails and never loses a byte."""

    def test_utf8(self) -> None:
        """utf8mb4 bytes decode to text."""
        assert decode_text("Jos\u00e9".encode(), "utf8mb4") == "Jos\u00e9"

    def test_invalid_utf8_escaped(self) -> None:
        """Invalid UTF-8 is kept as surrogate escapes and detected as undecodable."""
        text = decode_text(b"ab\xffc", "utf8")
        assert text == "ab\udcffc"
        assert has_undecodable(text)

    def test_latin1_double_encoded(self) -> None:
        """UTF-8 stored through a latin1 connection decodes to its latin1 characters, with nothing
        undecodable."""
        text = decode_text(b"Jos\xc3\xa9", "latin1")
        assert text == "Jos\u00c3\u00a9"
        assert not has_undecodable(text)

    def test_binary_high_bytes_escaped(self) -> None:
        """High bytes of a binary column are kept as surrogate escapes."""
        assert decode_text(b"a\x80", "binary") == "a\udc80"

    def test_wide_broken_unit_kept(self) -> None:
        """A broken unit of a wide charset is kept, not dropped."""
        assert decode_text(b"\x00A\x00", "utf16") == "\x00A\x00"

    @given(st.binary(max_size=64), st.sampled_from(["latin1", "utf8mb4", "binary", "cp1250"]))
    def test_round_trip_to_same_charset(self, raw: bytes, name: str) -> None:
        """Decoded text encodes back to the same bytes in the same charset."""
        codec = python_codec(name)
        assert encode_for_connection(decode_text(raw, name), codec) == raw


class TestLosslessCodec:
    """lossless_codec names codecs the binlog library can use with errors='strict'."""

    def test_forces_surrogateescape(self) -> None:
        """The lossless codec never raises: invalid bytes round-trip through surrogate escapes."""
        name = lossless_codec("utf8mb4")
        assert b"a\xff".decode(name, "strict") == "a\udcff"
        assert "a\udcff".encode(name, "strict") == b"a\xff"

    def test_latin1(self) -> None:
        """The lossless latin1 codec is MariaDB's latin1."""
        assert b"\x80\x81".decode(lossless_codec("latin1")) == "\u20ac\x81"

    def test_wide_never_raises(self) -> None:
        """A lossless wide codec never raises on a short input."""
        assert b"A".decode(lossless_codec("utf16")) == "A"

    @pytest.mark.parametrize("name", ["binary", "swe7", "klingon"])
    def test_keep_bytes(self, name: str) -> None:
        """Charsets with no text meaning keep their bytes, and the keep-bytes marker is not a codec."""
        assert lossless_codec(name) == KEEP_BYTES
        with pytest.raises(LookupError):
            b"x".decode(KEEP_BYTES)

    def test_unknown_lossless_name_not_a_codec(self) -> None:
        """Only known charsets have lossless codecs."""
        with pytest.raises(LookupError):
            codecs.lookup("lossless_klingon")


class TestConnectionCodec:
    """The PHP connection is UTF-8 with use_non_latin, else the server default charset."""

    def test_use_non_latin(self) -> None:
        """use_non_latin=1 means a UTF-8 connection whatever the server charset."""
        assert connection_codec(True) == "utf-8"
        assert connection_codec(True, "latin1") == "utf-8"

    def test_server_default_latin1(self) -> None:
        """use_non_latin=0 with a latin1 server means MariaDB's latin1."""
        assert connection_codec(False) == MARIADB_LATIN1

    def test_server_default_utf8mb4(self) -> None:
        """use_non_latin=0 with a utf8mb4 server means UTF-8."""
        assert connection_codec(False, "utf8mb4") == "utf-8"

    def test_unknown_server_charset(self) -> None:
        """An unknown server charset is refused."""
        with pytest.raises(ValueError):
            connection_codec(False, "klingon")


class TestEncodeForConnection:
    """Characters the connection cannot hold become ?, surrogate escapes their bytes."""

    @pytest.mark.parametrize(
        ("text", "codec", "raw"),
        [
            ("Jos\u00c3\u00a9", MARIADB_LATIN1, b"Jos\xc3\xa9"),
            ("Jos\u00e9", MARIADB_LATIN1, b"Jos\xe9"),
            ("Jos\u00e9", "utf-8", b"Jos\xc3\xa9"),
            ("a\U0001f600b", MARIADB_LATIN1, b"a?b"),
            ("\u0100\u0080", MARIADB_LATIN1, b"??"),
            ("a\U0001f600", "utf-8", b"a\xf0\x9f\x98\x80"),
            ("a\udc80\udcff", "utf-8", b"a\x80\xff"),
            ("a\udc80", MARIADB_LATIN1, b"a\x80"),
            ("a\ud800", "utf-8", b"a?"),
            ("\udc7f", "utf-8", b"?"),
        ],
    )
    def test_encode(self, text: str, codec: str, raw: bytes) -> None:
        """Characters the connection cannot hold become ?, surrogate escapes become their bytes again."""
        assert encode_for_connection(text, codec) == raw
