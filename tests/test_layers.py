"""The module table of docs/architecture.md is the import contract: every module of the package is in it,
and no module imports one of a higher layer. (`python3 dev.py lint` runs this file too.)"""

from __future__ import annotations

import ast
import re
from pathlib import Path

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


# Engine differences live in cdnstore/db/ (docs/architecture.md, "One data layer, two engines"): no other module
# asks which engine it runs on, passes row-lock fragments around, or reaches an engine's own module or driver.
ENGINE_LEAK = re.compile(
    r"\.engine\b|\bengine\s*[!=]=|for_update|skip_locked|serial_writes|\b(?:SqliteDatabase|PostgresDatabase)\b"
    r"|\bdb\.(?:sqlite|postgres)\b|^\s*(?:import|from)\s+(?:aiosqlite|asyncpg)\b",
    re.MULTILINE,
)


def test_no_module_outside_db_branches_on_the_engine() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0).strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if "db" not in path.relative_to(PACKAGE).parts[:1]
        for text in [path.read_text()]
        for match in ENGINE_LEAK.finditer(text)
    ]
    assert not found, "engine differences outside cdnstore/db/:\n" + "\n".join(found)
