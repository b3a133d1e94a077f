"""The figures of docs/reliability.md, counted while the suite runs.

Tests that inject faults or try bad input add to their area's row (`LEDGER.add`). Every answer the test
client gets is counted too, and a 5xx answer that no test asserted (`Answer.expect` / `.problem`) is an
unexpected one. At the end of a run the table is printed; when the run passed, the rows of the areas it
ran (and, after the whole suite, its count of answers) go into artifacts/reliability.json, which keeps the
other areas' last figures. A test run never writes a tracked file: `python3 dev.py reliability` (or
`python3 tests/reliability.py --write`) copies the artifact's figures into docs/reliability.md.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"
ARTIFACT = ROOT / "artifacts" / "reliability.json"
BEGIN, END = "<!-- figures:begin (written by python3 dev.py reliability) -->", "<!-- figures:end -->"
SUITE_LINE = "API answers the test client got in the last full run:"
HEADER = (
    "| area | faults injected | rounds | files checked | drift found | bad inputs tried | 5xx seen |\n"
    "|---|---:|---:|---:|---:|---:|---:|"
)


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


_MERGED = itertools.count(1)


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

    def dump(self) -> dict[str, Any]:
        """This process's figures as plain data (what a pytest-xdist worker sends its controller)."""
        rows = {area: asdict(row) for area, row in self.rows.items()}
        return {
            "rows": rows,
            "answers": self.answers,
            "refusals": self.refusals,
            "unexpected": [*self.unexpected.values()],
        }

    def merge(self, other: dict[str, Any]) -> None:
        """Add another process's `dump()` to these figures (the controller, as each worker finishes)."""
        for area, counts in other["rows"].items():
            self.add(area, **counts)
        self.answers += other["answers"]
        self.refusals += other["refusals"]
        for what in other["unexpected"]:  # keyed apart from this process's id()s, which are positive
            self.unexpected[-next(_MERGED)] = what

    def table(self, rows: dict[str, Row]) -> str:
        return "\n".join(
            [HEADER, *(f"| {area} | " + " | ".join(row.cells()) + " |" for area, row in sorted(rows.items()))]
        )

    def suite_line(self) -> str:
        return (
            f"{SUITE_LINE} {self.answers}, of which {self.refusals} refused (4xx); "
            f"5xx that no test expected: {len(self.unexpected)}"
            + "".join(f"\n- {what}" for what in sorted(self.unexpected.values()))
        )

    def save(self, whole_suite: bool) -> None:
        """Into artifacts/reliability.json: this run's rows over the last known ones (the artifact's, else
        the doc's), and this run's count of answers if it was the whole suite."""
        rows, line = read_artifact() or read_doc()
        counted = counted_areas()  # (reads every test file: once, not once a row)
        rows = {area: row for area, row in rows.items() if area in counted} | self.rows
        ARTIFACT.parent.mkdir(exist_ok=True)
        ARTIFACT.write_text(
            json.dumps(
                {
                    "rows": {a: asdict(r) for a, r in sorted(rows.items())},
                    "suite_line": self.suite_line() if whole_suite else line,
                    "this_run": {
                        "whole_suite": whole_suite,
                        "answers": self.answers,
                        "refusals": self.refusals,
                        "unexpected_5xx": sorted(self.unexpected.values()),
                    },
                },
                indent=2,
            )
        )


def area(name: str) -> str:
    """An area of the table named once in a test module whose helper counts into it (`counted_areas` finds
    `area("...")` as it finds `LEDGER.add("...")`)."""
    return name


def counted_areas() -> set[str]:
    """The areas the test files add to (`LEDGER.add("area", ...)`, or name as `area("...")`), whether this
    run ran them or not."""
    return {
        name
        for path in Path(__file__).parent.glob("test_*.py")
        for name in re.findall(r'(?:LEDGER\.add|\barea)\(\s*"([^"]+)"', path.read_text())
    }


def read_artifact() -> tuple[dict[str, Row], str] | None:
    """The rows and the whole-suite line in artifacts/reliability.json (None before a passing run)."""
    if not ARTIFACT.exists():
        return None
    saved = json.loads(ARTIFACT.read_text())
    if "suite_line" not in saved:  # written by an older suite, which kept its figures in the doc
        return None
    return {area: Row(**row) for area, row in saved["rows"].items()}, saved["suite_line"]


def write_doc() -> bool:
    """docs/reliability.md's table and line from the artifact; False (nothing written) without one."""
    saved = read_artifact()
    if saved is None:
        return False
    rows, line = saved
    text = DOC.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:start] + f"\n{LEDGER.table(rows)}\n\n{line}\n" + text[end:])
    return True


def read_doc() -> tuple[dict[str, Row], str]:
    """The rows of the table in docs/reliability.md, and its line about the whole suite."""
    text = DOC.read_text()
    block = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    rows, line = {}, f"{SUITE_LINE} not counted yet"
    for raw in block.strip().splitlines():
        cells = [c.strip() for c in raw.strip().strip("|").split("|")]
        if raw.startswith("|") and len(cells) == 7 and all(re.fullmatch(r"\d+", c) for c in cells[1:]):
            rows[cells[0]] = Row(*map(int, cells[1:]))
        elif raw.startswith(SUITE_LINE):
            line = block[block.index(raw) :].strip()
    return rows, line


LEDGER = Ledger()


def server_errors(answers: list[Any], documented: str | None = None) -> int:
    """5xx answers other than a 503 with the `documented` problem code (the fault's documented answer)."""
    return sum(
        a.status >= 500
        and not (
            documented is not None and a.status == 503 and isinstance(a.body, dict) and a.body.get("code") == documented
        )
        for a in answers
    )


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python3 tests/reliability.py --write  (artifacts/reliability.json -> docs/reliability.md)")
    if not write_doc():
        sys.exit(f"{ARTIFACT.relative_to(ROOT)} is missing: run the suite first (python3 dev.py test)")
    print(f"{DOC.relative_to(ROOT)} now shows the figures of {ARTIFACT.relative_to(ROOT)}")
