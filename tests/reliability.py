"""The figures of docs/reliability.md, counted while the suite runs.

Tests that inject faults or try bad input add to their area's row (`LEDGER.add`). Every answer the test
client gets is counted too, and a 5xx answer that no test asserted (`Answer.expect` / `.problem`) is an
unexpected one. At the end of a run the table is printed; when the run passed, the rows of the areas it
ran are written into docs/reliability.md (and everything into artifacts/reliability.json).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- figures:begin (written by the test suite) -->", "<!-- figures:end -->"
SUITE_LINE = "API answers the test client got in the last full run:"
HEADER = ("| area | faults injected | rounds | files checked | drift found | bad inputs tried | 5xx seen |\n"
          "|---|---:|---:|---:|---:|---:|---:|")


@dataclass
class Row:
    faults: int = 0  # kills, cut connections, full disks ...
    rounds: int = 0
    files_checked: int = 0  # files whose every copy was checked afterwards
    drift: int = 0  # differences between the database and the servers after convergence
    bad_inputs: int = 0  # hostile or malformed requests sent
    server_errors: int = 0  # 5xx answers that were not the documented answer to the fault

    def cells(self) -> list[str]:
        return [str(v) for v in asdict(self).values()]


@dataclass
class Ledger:
    rows: dict[str, Row] = field(default_factory=dict)
    answers: int = 0
    refusals: int = 0  # 4xx answers: bad input, missing rights, limits
    unexpected: dict[int, str] = field(default_factory=dict)  # id(answer) -> "METHOD path -> status"

    def add(self, area: str, **counts: int) -> None:
        row = self.rows.setdefault(area, Row())
        for name, value in counts.items():
            setattr(row, name, getattr(row, name) + value)

    def answered(self, answer: Any, what: str) -> None:
        self.answers += 1
        self.refusals += 400 <= answer.status < 500
        if answer.status >= 500:
            self.unexpected[id(answer)] = what

    def expected(self, answer: Any) -> None:
        self.unexpected.pop(id(answer), None)

    def table(self, rows: dict[str, Row]) -> str:
        return "\n".join([HEADER, *(f"| {area} | " + " | ".join(row.cells()) + " |"
                                    for area, row in sorted(rows.items()))])

    def suite_line(self) -> str:
        return (f"{SUITE_LINE} {self.answers}, of which {self.refusals} refused (4xx); "
                f"5xx that no test expected: {len(self.unexpected)}"
                + "".join(f"\n- {what}" for what in sorted(self.unexpected.values())))

    def write(self, whole_suite: bool) -> None:
        """Into artifacts/reliability.json, and the rows this run made into docs/reliability.md."""
        artifacts = ROOT / "artifacts"
        artifacts.mkdir(exist_ok=True)
        (artifacts / "reliability.json").write_text(json.dumps(
            {"rows": {a: asdict(r) for a, r in self.rows.items()}, "answers": self.answers,
             "refusals": self.refusals,
             "unexpected_5xx": sorted(self.unexpected.values())}, indent=2))
        rows, line = read_doc()
        rows.update(self.rows)
        text = DOC.read_text()
        start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
        block = f"\n{self.table(rows)}\n\n{self.suite_line() if whole_suite else line}\n"
        DOC.write_text(text[:start] + block + text[end:])


def read_doc() -> tuple[dict[str, Row], str]:
    """The rows of the table in docs/reliability.md, and its line about the whole suite."""
    text = DOC.read_text()
    block = text[text.index(BEGIN) + len(BEGIN):text.index(END)]
    rows, line = {}, f"{SUITE_LINE} not counted yet"
    for raw in block.strip().splitlines():
        cells = [c.strip() for c in raw.strip().strip("|").split("|")]
        if raw.startswith("|") and len(cells) == 7 and all(re.fullmatch(r"\d+", c) for c in cells[1:]):
            rows[cells[0]] = Row(*map(int, cells[1:]))
        elif raw.startswith(SUITE_LINE):
            line = block[block.index(raw):].strip()
    return rows, line


LEDGER = Ledger()


def server_errors(answers: list[Any], documented: str | None = None) -> int:
    """5xx answers other than a 503 with the `documented` problem code (the fault's documented answer)."""
    return sum(a.status >= 500 and not (documented is not None and a.status == 503 and isinstance(a.body, dict)
                                        and a.body.get("code") == documented) for a in answers)
