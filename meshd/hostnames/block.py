"""The marked block meshd keeps in a hosts file (pure): replace it, or take it out, and touch nothing else.

    # BEGIN meshd <tag>
    # the mesh's names, kept by the meshd agent <tag>; edits inside this block are overwritten
    10.213.130.7	web.default.svc.cluster.local web.default.svc web.default
    # END meshd <tag>

`<tag>` is the agent's id, so two agents on one machine keep a block each. Every line outside our block is kept
byte for byte (comments, odd whitespace, a last line without a newline). A block left by a crashed agent is
replaced where it stands (several, from whatever cause, become one); a marker of ours without its partner is
dropped, and the lines after it are kept (they may be the user's).
"""

from __future__ import annotations

from collections.abc import Sequence


def markers(tag: str) -> tuple[str, str]:
    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"a hosts block tag is one word, not {tag!r}")
    return f"# BEGIN meshd {tag}", f"# END meshd {tag}"


def replace_block(text: str, tag: str, lines: Sequence[str]) -> str:
    """`text` with our block holding `lines` (no lines: no block at all)."""
    begin, end = markers(tag)
    source = _split(text)
    kept: list[str] = []
    insert_at: int | None = None
    i = 0
    while i < len(source):
        marker = source[i].strip()
        if marker == begin:
            close = _closing(source, i, begin, end)
            if close is not None:
                insert_at = len(kept) if insert_at is None else insert_at
                i = close + 1
                continue
        if marker not in (begin, end):
            kept.append(source[i])
        i += 1
    if not lines:
        return "".join(kept)
    block = [
        begin + "\n",
        f"# the mesh's names, kept by the meshd agent {tag}; edits inside this block are overwritten\n",
        *(line + "\n" for line in lines),
        end + "\n",
    ]
    if insert_at is None:
        insert_at = len(kept)
        if kept and not kept[-1].endswith("\n"):
            kept[-1] += "\n"
    return "".join(kept[:insert_at] + block + kept[insert_at:])


def block_lines(text: str, tag: str) -> tuple[str, ...] | None:
    """The entry lines of our block in `text` (comments left out), or None when it has none."""
    begin, end = markers(tag)
    source = _split(text)
    for i, line in enumerate(source):
        if line.strip() == begin:
            close = _closing(source, i, begin, end)
            if close is not None:
                inside = (s.rstrip("\r\n") for s in source[i + 1 : close])
                return tuple(s for s in inside if s.strip() and not s.lstrip().startswith("#"))
    return None


def _split(text: str) -> list[str]:
    """Lines with their '\\n' (only '\\n' separates lines in a hosts file); "".join gives `text` back."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _closing(lines: list[str], start: int, begin: str, end: str) -> int | None:
    """The index of the END that closes the BEGIN at `start`; None when another BEGIN or the end comes first."""
    for j in range(start + 1, len(lines)):
        marker = lines[j].strip()
        if marker == end:
            return j
        if marker == begin:
            return None
    return None
