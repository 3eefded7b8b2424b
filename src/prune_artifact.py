"""Remove from a built function folder the library subpackages the functions never import.

Run by `src/Makefile` after the dependencies are installed and before bytecode is compiled:
``python prune_artifact.py ARTIFACTS_DIR``. Not shipped in the artifact.

Why: the zipped artifact was 4.6 MB, most of it Powertools utilities nobody imports (the
event handler's OpenAPI support, parser, data classes, idempotency, Kafka...). What is kept is
computed, not listed: `modulefinder` follows every import statement of every `lead_caller`
module (including imports inside functions), transitively through the bundled packages, and a
prunable subpackage goes only when no module of it was reached. A helper who imports a new
Powertools utility keeps it without touching this file. Imports by computed name are invisible
to a static scan; the ones Powertools makes (the X-Ray SDK, through `LazyLoader`) are outside
the prunable subpackages, and the artifact test runs every function built this way.
"""

from __future__ import annotations

import modulefinder
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any

#: folders (relative to the artifact) whose subpackages may go when unused, one level down
PRUNABLE_PARENTS = ("aws_lambda_powertools/utilities",)
#: single subpackages that may go when unused
PRUNABLE = ("aws_lambda_powertools/event_handler",)
#: data of phonenumbers' short-number API (emergency/short codes), loaded by region on first use
#: of `phonenumbers.shortnumberinfo`, which lead-caller never calls; the package index stays
SHORT_NUMBER_DATA = "phonenumbers/shortdata"


#: (importing module, imported prefix) pairs a static scan must not follow: imports of optional
#: dependencies that only run for objects of that dependency. Powertools' `pydantic_to_dict`
#: imports the event handler's OpenAPI helpers, and is only called with pydantic models
#: (pydantic is not bundled).
OPTIONAL_IMPORTS = (("aws_lambda_powertools.shared.functions", "aws_lambda_powertools.event_handler"),)


class _Finder(modulefinder.ModuleFinder):
    """ModuleFinder that skips the OPTIONAL_IMPORTS."""

    def import_hook(self, name: str, caller: Any = None, fromlist: Any = None, level: int = -1) -> Any:
        """Follow an import unless it is one of the OPTIONAL_IMPORTS."""
        importer = getattr(caller, "__name__", "")
        if any(importer == who and name.startswith(what) for who, what in OPTIONAL_IMPORTS):
            return None
        return super().import_hook(name, caller, fromlist, level)


def reachable_modules(artifact: Path) -> set[str]:
    """Every module name the `lead_caller` modules import, transitively, within the artifact and stdlib."""
    stdlib = [sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib")]
    finder = _Finder(path=[str(artifact), *dict.fromkeys(stdlib)])
    for source in sorted((artifact / "lead_caller").rglob("*.py")):
        parts = source.relative_to(artifact).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        finder.import_hook(name)
    return set(finder.modules)


def prune(artifact: Path) -> list[str]:
    """Delete the unused subpackages; the folders removed, relative to the artifact."""
    used = reachable_modules(artifact)
    candidates = [artifact / name for name in PRUNABLE]
    for parent in PRUNABLE_PARENTS:
        candidates += sorted(path for path in (artifact / parent).iterdir() if (path / "__init__.py").exists())
    removed: list[str] = []
    for folder in candidates:
        if not folder.is_dir():
            continue
        module = ".".join(folder.relative_to(artifact).parts)
        if any(name == module or name.startswith(module + ".") for name in used):
            continue
        shutil.rmtree(folder)
        removed.append(str(folder.relative_to(artifact)))
    short = artifact / SHORT_NUMBER_DATA
    if short.is_dir() and not any(name.startswith("phonenumbers.shortdata.region_") for name in used):
        for region in short.glob("region_*.py"):
            region.unlink()
        removed.append(f"{SHORT_NUMBER_DATA}/region_*.py")
    for stub in artifact.rglob("*.pyi"):  # type stubs: never imported
        stub.unlink()
    return removed


def main(argv: list[str]) -> int:
    """Prune the artifact folder named on the command line."""
    if len(argv) != 2:
        print("usage: prune_artifact.py ARTIFACTS_DIR", file=sys.stderr)
        return 2
    for folder in prune(Path(argv[1])):
        print(f"pruned {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
