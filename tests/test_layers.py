"""The module table of docs/architecture.md is the import contract: every module of the package is in it,
and no module imports one of a higher layer. The harnesses (testbed/) stay out of the product: nothing under
cdnstore/ imports them but the `demo` command, when run. (`python3 dev.py lint` runs this file too.)"""

from __future__ import annotations

import argparse
import ast
import importlib.abc
import importlib.util
import re
import subprocess
import sys
import textwrap
import tomllib
from enum import StrEnum
from pathlib import Path

import pytest

from cdnstore import models
from cdnstore.__main__ import NO_TESTBED, cmd_demo
from cdnstore.config import Config

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "cdnstore"
# The table's layers, top (0) to bottom: a module may import its own layer's modules and those below.
# The page's row holds the bundled page and its HTTP routes: the HTTP layer's level.
LEVEL = {"entry": 0, "composition": 1, "HTTP": 2, "page": 2, "use cases": 3, "infrastructure": 4, "base": 5}


def documented_layers() -> dict[str, str]:
    """Module (dotted, e.g. "cdnstore.api.files", or a package "cdnstore.db") → its layer in the table."""
    table = (ROOT / "docs" / "architecture.md").read_text().split("## Modules", 1)[1].split("\n## ", 1)[0]
    found: dict[str, str] = {}
    layer = ""
    for row in table.splitlines():
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in ("layer", "---"):
            continue
        layer = cells[0] or layer
        for path in re.findall(r"`([\w/]+(?:\.py|/))`", cells[1]):
            dotted = "cdnstore." + path.removesuffix(".py").removesuffix("/").replace("/", ".")
            found[dotted] = layer
    return found


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found[dotted] = path
    return found


def layer_of(module: str, layers: dict[str, str]) -> str | None:
    """The layer of `module`, or of the package the table names it by (`db/` covers cdnstore.db.*)."""
    while module:
        if module in layers:
            return layers[module]
        module = module.rpartition(".")[0]
    return None


def imported(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that `module` imports (relative imports resolved)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("cdnstore") and name != module}


# Not modules of the service: the package itself, the migrations' package markers.
UNLISTED = (
    "cdnstore",
    "cdnstore.migrations",
    "cdnstore.migrations.postgres",
)


def test_every_module_is_in_the_architecture_table() -> None:
    layers = documented_layers()
    assert set(layers.values()) <= set(LEVEL), set(layers.values()) - set(LEVEL)
    missing = sorted(m for m in modules() if layer_of(m, layers) is None and m not in UNLISTED)
    assert not missing, f"docs/architecture.md's module table does not name {missing}"


def test_no_module_imports_one_of_a_higher_layer() -> None:
    layers, known = documented_layers(), modules()
    upward = []
    for module, path in known.items():
        mine = layer_of(module, layers)
        if mine is None:
            continue
        for target in imported(module, path, known):
            theirs = layer_of(target, layers)
            if theirs is not None and LEVEL[theirs] < LEVEL[mine]:
                upward.append(f"{module} ({mine}) imports {target} ({theirs})")
    assert not upward, "imports against docs/architecture.md's layers:\n" + "\n".join(sorted(upward))


# --- the harnesses beside the product --------------------------------------------------------------------

HARNESS = ROOT / "testbed"


def imports_of(path: Path) -> list[tuple[str, ast.stmt, list[str]]]:
    """(module imported, the statement, the functions it is inside) for each absolute import in `path`."""
    found: list[tuple[str, ast.stmt, list[str]]] = []

    def visit(node: ast.AST, within: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name, child, within) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and not child.level and child.module:
                found.append((child.module, child, within))
            inner = [*within, child.name] if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else within
            visit(child, inner)

    visit(ast.parse(path.read_text()), [])
    return found


def test_nothing_in_cdnstore_imports_the_harnesses_but_the_demo_command_when_it_runs() -> None:
    allowed = {("cdnstore.__main__", "cmd_demo")}
    found = []
    for module, path in modules().items():
        for name, statement, within in imports_of(path):
            if name.split(".")[0] == HARNESS.name and (module, within[-1] if within else "") not in allowed:
                found.append(f"{module} line {statement.lineno}: {name}")
    assert not found, "the product imports its harnesses:\n" + "\n".join(found)


def test_the_harnesses_build_on_cdnstore_alone_not_on_the_tests_or_the_benchmarks() -> None:
    beside = {p.stem for p in (ROOT / "tests").glob("*.py")} | {"bench", "tests"}
    found = [
        f"{path.name} line {statement.lineno}: {name}"
        for path in sorted(HARNESS.rglob("*.py"))
        for name, statement, _ in imports_of(path)
        if name.split(".")[0] in beside
    ]
    assert not found, "testbed/ imports the tests' or the benchmarks' modules:\n" + "\n".join(found)


class NotInstalled(importlib.abc.MetaPathFinder):
    """Finds the harnesses nowhere, as in an install of the product alone."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.split(".")[0] == HARNESS.name:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def test_the_demo_command_says_in_one_line_how_to_get_the_harnesses_when_they_are_not_installed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name in [n for n in sys.modules if n.split(".")[0] == HARNESS.name]:
        monkeypatch.delitem(sys.modules, name)  # (put back afterwards)
    monkeypatch.setattr(sys, "meta_path", [NotInstalled(), *sys.meta_path])
    refused = cmd_demo(Config(), argparse.Namespace(dir=str(tmp_path), port=None, daemons=1))
    said = capsys.readouterr()
    assert refused == 1 and said.out == ""
    assert said.err == NO_TESTBED + "\n" and "python3 dev.py demo" in said.err
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing made


def test_the_products_install_carries_no_harness() -> None:
    """`pip install .` and the Docker image: cdnstore's packages alone (testbed/ is a distribution of its own)."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert all(package.split(".")[0] == "cdnstore" for package in setuptools["packages"]), setuptools["packages"]
    harness = tomllib.loads((HARNESS / "pyproject.toml").read_text())
    assert harness["tool"]["setuptools"]["packages"] == [HARNESS.name]
    copied = [line.split()[1:-1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")]
    assert not any(HARNESS.name in source for sources in copied for source in sources), copied


def test_lint_and_typecheck_cover_every_folder_of_python_code() -> None:
    spec = importlib.util.spec_from_file_location("devpy", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    devpy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(devpy)
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True)
    folders = {Path(line).parts[0] for line in tracked.stdout.splitlines()}
    assert {"cdnstore", HARNESS.name, "tests", "bench", "dev.py"} <= folders
    assert folders <= set(devpy.SOURCES), f"not linted or type-checked: {folders - set(devpy.SOURCES)}"


# Engine differences live in cdnstore/db/ (docs/architecture.md, "One data layer, two engines"): no other module
# asks which engine it runs on, passes row-lock fragments around, or reaches an engine's own module or driver.
ENGINE_LEAK = re.compile(
    r"\.engine\b|\bengine\s*[!=]=|for_update|skip_locked|serial_writes|\b(?:SqliteDatabase|PostgresDatabase)\b"
    r"|\bdb\.(?:sqlite|postgres)\b|^\s*(?:import|from)\s+(?:aiosqlite|asyncpg)\b",
    re.MULTILINE,
)


def outside_db(pattern: re.Pattern[str]) -> list[str]:
    """Where `pattern` matches in cdnstore/ outside db/: "path:line: the match"."""
    return [
        f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0).strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if "db" not in path.relative_to(PACKAGE).parts[:1]
        for text in [path.read_text()]
        for match in pattern.finditer(text)
    ]


def test_no_module_outside_db_branches_on_the_engine() -> None:
    found = outside_db(ENGINE_LEAK)
    assert not found, "engine differences outside cdnstore/db/:\n" + "\n".join(found)


# Reads reach the use cases as records (issue 25, item 1): `db.Row` is the type of db/'s own functions; every
# other module turns the rows it reads into frozen records by column name (tables.record) before handing them on.
ROW_NAMED = re.compile(r"\bRow\b")


def test_no_module_outside_db_hands_on_untyped_rows() -> None:
    found = outside_db(ROW_NAMED)
    assert not found, "db.Row named outside cdnstore/db/ (return a record instead):\n" + "\n".join(found)


# --- who writes which table (docs/architecture.md, "Who writes which table") ------------------------------

# Each table -> the one module that may INSERT into, UPDATE or DELETE from it.
WRITERS = {
    "files": "cdnstore/tables/files.py",
    "versions": "cdnstore/tables/versions.py",
    "replicas": "cdnstore/tables/replicas.py",
    "jobs": "cdnstore/job_queue.py",
}
WRITE = re.compile(r"\b(?:UPDATE|INSERT INTO|DELETE FROM)\s+(\w+)\b")


def sources(package: Path = PACKAGE) -> dict[str, str]:
    """Every module's text by its path from the repository root (`cdnstore/...`)."""
    return {str(path.relative_to(package.parent)): path.read_text() for path in sorted(package.rglob("*.py"))}


def foreign_writes(found: dict[str, str]) -> list[str]:
    """`path:line: statement` for each write of a table of WRITERS outside its one writer."""
    return [
        f"{path}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0)}"
        for path, text in found.items()
        for match in WRITE.finditer(text)
        if match.group(1) in WRITERS and WRITERS[match.group(1)] != path
    ]


def test_each_content_table_is_written_by_its_one_module_only() -> None:
    found = foreign_writes(sources())
    assert not found, "tables written outside their one writer (WRITERS):\n" + "\n".join(found)


def test_every_writer_named_exists_and_writes_its_table() -> None:
    """The map cannot go stale: each writer is there and does write its table (a rename fails here)."""
    found = sources()
    for table, path in WRITERS.items():
        assert path in found, path
        assert any(m.group(1) == table for m in WRITE.finditer(found[path])), (table, path)


# --- statuses in SQL (docs/architecture.md, "Who writes which table") -------------------------------------

# Every status a row stores or a statement computes, from the models.py enums (each `StrEnum` there: a new
# enum or value is checked without a change here).
STATUS_ENUMS = [
    value
    for value in vars(models).values()
    if isinstance(value, type) and issubclass(value, StrEnum) and value is not StrEnum
]
STATUS_VALUES = {member.value for enum in STATUS_ENUMS for member in enum}
QUOTED_STATUS = re.compile("'(" + "|".join(sorted(map(re.escape, STATUS_VALUES))) + ")'")
# SQL text: an upper-case keyword as a word, or a column compared with a quoted value (an assignment list
# such as "status = 'x', at = :at" has no keyword). Prose, log lines and JSON keys have neither.
SQL_TEXT = re.compile(
    r"\b(?:SELECT|INSERT|UPDATE|DELETE|FROM|WHERE|SET|JOIN|VALUES|CASE|WHEN|THEN|ELSE|AND|OR|IN|NOT|NULL|IS)\b"
    r"|\w\s*(?:=|!=|<>)\s*'"
)
# Spelt in SQL on purpose (path -> the value and why); the migrations and the schema files spell them all.
SQL_STATUS_EXCEPTIONS: dict[str, str] = {}


def string_constants(text: str) -> list[tuple[int, str]]:
    """(line, text) of each string literal of a module but its docstrings; an f-string as its literal parts,
    each `{...}` as `{}` (what it inserts is checked where it is defined)."""
    tree = ast.parse(text)
    skipped = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    skipped |= {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr):
            parts = [part.value if isinstance(part, ast.Constant) else "{}" for part in node.values]
            found.append((node.lineno, "".join(str(part) for part in parts)))
    return sorted(found)


def sql_status_literals(found: dict[str, str]) -> list[str]:
    """`path:line: 'value'` for each status value quoted inside SQL text of a module but the migrations'."""
    return [
        f"{path}:{line}: '{value}'"
        for path, text in found.items()
        if not path.startswith("cdnstore/migrations/") and path not in SQL_STATUS_EXCEPTIONS
        for line, string in string_constants(text)
        if SQL_TEXT.search(string)
        for value in QUOTED_STATUS.findall(string)
    ]


def test_no_status_is_spelt_as_a_literal_in_sql_outside_the_enums_and_the_schema() -> None:
    """A status in a statement comes from its models.py enum: a bound parameter, or the enum's value put into
    the text at import (where a partial index must see the literal). SQL text is told from other strings by
    SQL_TEXT; docstrings and comments are prose, not looked at."""
    found = sql_status_literals(sources())
    assert not found, "status literals in SQL (use the models.py enums):\n" + "\n".join(found)


def test_the_status_check_sees_quoted_statuses_in_sql_and_not_in_prose() -> None:
    module = textwrap.dedent('''
        """A docstring may say 'queued'."""
        A = "SELECT 1 FROM jobs WHERE status = 'queued'"
        B = f"UPDATE jobs SET status = '{QUEUED}' WHERE kind = 'copy'"
        C = "status = 'delivered', delivered_at = :at"
        D = "the job stays 'failed' for an admin"
        E = f"SELECT 1 FROM imports WHERE state = '{ImportState.RUNNING}'"
    ''')
    assert sql_status_literals({"cdnstore/x.py": module}) == [
        "cdnstore/x.py:3: 'queued'",
        "cdnstore/x.py:4: 'copy'",
        "cdnstore/x.py:5: 'delivered'",
    ]


def test_every_value_a_status_column_allows_is_an_enums_value() -> None:
    """So that the check above knows every stored status: a CHECK (column IN ('...')) of text values in the
    schema has an enum in models.py."""
    schema = (PACKAGE / "schema.sql").read_text()
    allowed = {
        value
        for values in re.findall(r"CHECK \(\w+ IN \(([^)]*)\)\)", schema)
        for value in re.findall(r"'([^']*)'", values)
    }
    assert allowed and allowed <= STATUS_VALUES, allowed - STATUS_VALUES


# What reads the time in cdnstore (time.time, times.py's functions, datetime.now): a test that patched one of
# these into a cdnstore module would move time behind the clock port's back.
TIME_READS = frozenset({"time", "time_ns", "iso", "iso_in", "now_iso", "datetime"})


def patched_times(source: str) -> list[int]:
    """Lines of `source` (a test module) that patch a time read of a cdnstore module or object:
    `monkeypatch.setattr(<anything imported from cdnstore>, "<TIME_READS>", ...)` or the dotted-string form."""
    tree = ast.parse(source)
    bound = {"cdnstore"}  # names bound to cdnstore's modules or objects
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cdnstore"):
            bound.update(alias.asname or alias.name for alias in node.names)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "setattr"):
            continue
        args = node.args
        if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
            dotted = args[0].value
            if dotted.startswith("cdnstore.") and dotted.rpartition(".")[2] in TIME_READS:
                found.append(node.lineno)
        elif len(args) >= 2 and isinstance(args[1], ast.Constant) and args[1].value in TIME_READS:
            root = args[0]
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in bound:
                found.append(node.lineno)
    return found


def test_no_test_moves_the_time_by_patching_a_cdnstore_module() -> None:
    """Time reaches the use cases through the clock port (cdnstore/clock.py): a test moves it with
    testbed.clock.FakeClock handed to `create_app(clock=...)` (`make_api(clock=...)`), never by patching."""
    found = {path.name: lines for path in (ROOT / "tests").glob("*.py") if (lines := patched_times(path.read_text()))}
    assert found == {}


def test_the_check_for_patched_times_sees_each_form() -> None:
    patches = """
from cdnstore import files as files_module
from cdnstore.auth import Tokens
import cdnstore.auth
monkeypatch.setattr(files_module, "iso_in", later)
monkeypatch.setattr(cdnstore.auth, "time", later)
monkeypatch.setattr("cdnstore.links.now_iso", later)
monkeypatch.setattr(Tokens, "time", later)
monkeypatch.setattr(files_module, "SWEEP_BATCH", 2)
monkeypatch.setattr(other_module, "time", later)
"""
    assert patched_times(patches) == [5, 6, 7, 8]


# --- the replication path, top to bottom (docs/architecture.md) -------------------------------------------

# The use cases that reach a file's content (an upload landing, a copy's read, a verification read) call down
# into content.py for it; none of them names another, so none can climb back into another inside a
# transaction (replicator -> integrity -> files -> job queue, as it was).
CONTENT_CALLERS = ("files", "integrity", "replicator")


def names_in(path: Path) -> set[str]:
    """Every variable, attribute and parameter name a module's code uses (not its strings nor its comments): a
    use case handed another untyped (`self.integrity`, `files: Any`) shows here. (A gateway of tables/ is
    imported under another name, `files_table`, as files.py does.)"""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
    return found


def test_the_use_cases_reaching_a_files_content_call_down_into_content_never_into_each_other() -> None:
    known = modules()
    found = []
    for caller in CONTENT_CALLERS:
        module = f"cdnstore.{caller}"
        names = {n.lower() for n in names_in(known[module])}
        found += [f"{caller}.py names {other}" for other in CONTENT_CALLERS if other != caller and other in names]
        others = {f"cdnstore.{other}" for other in CONTENT_CALLERS if other != caller}
        found += [f"{caller}.py imports {t}" for t in sorted(imported(module, known[module], known) & others)]
    assert not found, (
        "the replication path climbs sideways: a use case reaches another for a file's content, which is "
        "content.py's (see docs/architecture.md, 'The replication path, top to bottom'):\n" + "\n".join(found)
    )


def test_content_sits_below_the_use_cases_that_call_it() -> None:
    layers = documented_layers()
    mine = layer_of("cdnstore.content", layers)
    assert mine is not None, "docs/architecture.md's module table does not name content.py"
    callers = {caller: layer_of(f"cdnstore.{caller}", layers) for caller in CONTENT_CALLERS}
    assert all(theirs is not None and LEVEL[theirs] < LEVEL[mine] for theirs in callers.values()), (
        f"content.py ({mine}) must sit in a layer below {callers}: the import check then holds that it calls none"
    )
