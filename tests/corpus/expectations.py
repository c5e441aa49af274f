"""Reads what each corpus manifest's first line says a user should see (see tests/corpus/README.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Expectation:
    path: Path
    outcome: str  # "runs", "applies" or "refused"
    detail: str = ""  # for "refused": what the error names

    @property
    def text(self) -> str:
        return self.path.read_text()


def expectations() -> list[Expectation]:
    found = []
    for path in sorted(CORPUS.glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# expect: "), f"{path.name}: the first line must say what to expect"
        outcome, _, detail = first.removeprefix("# expect: ").partition(" ")
        assert outcome in ("runs", "applies", "refused"), f"{path.name}: unknown expectation {outcome!r}"
        found.append(Expectation(path, outcome, detail.strip()))
    return found
