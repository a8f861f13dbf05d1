"""Plain-text tables and JSON documents, as the operator commands print them."""

from __future__ import annotations

import json
from collections.abc import Sequence

__all__ = ["json_text", "text_table"]


def text_table(header: Sequence[str], rows: Sequence[Sequence[object]], right: frozenset[int]) -> str:
    """Columns padded to their widest cell; the columns in ``right`` right-aligned."""
    cells = [list(header), *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        parts = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def json_text(doc: object) -> str:
    """``doc`` as indented JSON (non-ASCII kept as is), one trailing newline."""
    return json.dumps(doc, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
