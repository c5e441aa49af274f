"""Go's text/tabwriter, as kubectl uses it: tab-separated cells aligned in column blocks (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field


def tabwrite(text: str, *, minwidth: int, padding: int) -> str:
    """Align tab-terminated cells like Go's tabwriter (a column block = consecutive lines having that cell)."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    _format(lines, 0, len(lines), [], out, minwidth=minwidth, padding=padding)
    return "\n".join(out)


def _format(
    lines: list[list[str]],
    line0: int,
    line1: int,
    widths: list[int],
    out: list[str],
    *,
    minwidth: int,
    padding: int,
) -> None:
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        _write_lines(lines, line0, this, widths, out)
        line0 = this
        width = minwidth
        while this < line1 and column < len(lines[this]) - 1:
            width = max(width, len(lines[this][column]) + padding)
            this += 1
        _format(lines, line0, this, [*widths, width], out, minwidth=minwidth, padding=padding)
        line0 = this
    _write_lines(lines, line0, line1, widths, out)


def _write_lines(lines: list[list[str]], line0: int, line1: int, widths: list[int], out: list[str]) -> None:
    for cells in lines[line0:line1]:
        parts = [cell.ljust(widths[j]) if j < len(cells) - 1 else cell for j, cell in enumerate(cells)]
        out.append("".join(parts))


# kubectl's `get` tables: printers.GetNewTabWriter (minwidth 6, padding 3, RememberWidths)
TABLE_MINWIDTH = 6
TABLE_PADDING = 3


@dataclass
class TableWriter:
    """Rows aligned like kubectl's table printer; widths only grow across calls (for `get -w`)."""

    widths: list[int] = field(default_factory=list)

    def render(self, rows: list[list[str]]) -> str:
        """The rows as aligned lines (no trailing newline); the last column is not padded."""
        for row in rows:
            for j, cell in enumerate(row[:-1]):
                width = max(TABLE_MINWIDTH, len(cell) + TABLE_PADDING)
                if j < len(self.widths):
                    self.widths[j] = max(self.widths[j], width)
                else:
                    self.widths.append(width)
        return "\n".join(
            "".join(cell.ljust(self.widths[j]) if j < len(row) - 1 else cell for j, cell in enumerate(row))
            for row in rows
        )
