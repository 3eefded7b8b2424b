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
PRUNABLE = ("aws_lambda_powertools/event_handler", "urllib3/contrib/emscripten")
#: data of phonenumbers' short-number API (emergency/short codes), loaded by region on first use
#: of `phonenumbers.shortnumberinfo`, which lead-caller never calls; the package index stays
SHORT_NUMBER_DATA = "phonenumbers/shortdata"
#: Swagger UI's bundled JavaScript and CSS (1.7 MB), read from disk only by the event handler's
#: `enable_swagger` route; they go unless a `lead_caller` module mentions `enable_swagger`
SWAGGER_ASSETS = "aws_lambda_powertools/event_handler/openapi/swagger_ui"
#: the X-Ray SDK's integrations: `patch_all` (Powertools' Tracer, `XRaySdkTracing=true`) imports
#: `aws_xray_sdk.ext.<name>` for each supported library and skips it when the import fails, which
#: it does for a library that is absent. An integration whose library is neither in the artifact,
#: nor in the standard library, nor provided by the Lambda runtime therefore goes: the SDK skips
#: it exactly as before. The library each integration imports, where its name differs:
XRAY_EXT = "aws_xray_sdk/ext"
XRAY_EXT_TARGETS = {"httplib": "http", "sqlalchemy_core": "sqlalchemy", "flask_sqlalchemy": "flask_sqlalchemy"}
#: top-level packages the Lambda Python runtime provides besides the standard library
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3"})
#: files of an installed distribution's metadata that nothing reads at run time (pip's list of
#: installed files and its markers); METADATA and the licences stay
DIST_INFO_UNUSED = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")


#: (importing module, imported prefix) pairs a static scan must not follow: imports of optional
#: dependencies that only run for objects of that dependency. Powertools' `pydantic_to_dict`
#: imports the event handler's OpenAPI helpers, and is only called with pydantic models
#: (pydantic is not bundled).
#: Powertools' batch types import the parser's models only when pydantic is already loaded
#: (`if "pydantic" in sys.modules`; pydantic is neither bundled nor in the runtime). urllib3
#: imports its Pyodide support only when `sys.platform == "emscripten"`.
OPTIONAL_IMPORTS = (
    ("aws_lambda_powertools.shared.functions", "aws_lambda_powertools.event_handler"),
    ("aws_lambda_powertools.utilities.batch.types", "aws_lambda_powertools.utilities.parser"),
    ("urllib3", "urllib3.contrib.emscripten"),
)


class _Finder(modulefinder.ModuleFinder):
    """ModuleFinder that skips the OPTIONAL_IMPORTS."""

    def import_hook(self, name: str, caller: Any = None, fromlist: Any = None, level: int = -1) -> Any:
        """Follow an import unless it is one of the OPTIONAL_IMPORTS."""
        importer = getattr(caller, "__name__", "") or ""
        absolute = name
        if level > 0 and importer:  # relative import: resolve against the importing package
            package = importer if getattr(caller, "__path__", None) else importer.rpartition(".")[0]
            base = package.rsplit(".", level - 1)[0] if level > 1 else package
            absolute = f"{base}.{name}" if name else base
        if any(importer == who and absolute.startswith(what) for who, what in OPTIONAL_IMPORTS):
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
    for folder in artifact.glob("*-stubs"):  # stub-only packages (wrapt-stubs), empty by now
        if not any(path.is_file() for path in folder.rglob("*")):
            shutil.rmtree(folder)
    removed += _prune_swagger_assets(artifact)
    removed += _prune_xray_integrations(artifact)
    for name in DIST_INFO_UNUSED:
        for path in artifact.glob(f"*.dist-info/{name}"):
            path.unlink()
            removed.append(str(path.relative_to(artifact)))
    return removed


def _prune_swagger_assets(artifact: Path) -> list[str]:
    folder = artifact / SWAGGER_ASSETS
    sources = (artifact / "lead_caller").rglob("*.py")
    if not folder.is_dir() or any("enable_swagger" in source.read_text(encoding="utf-8") for source in sources):
        return []
    assets = [*folder.glob("*.js"), *folder.glob("*.css")]
    for asset in assets:
        asset.unlink()
    return [str(asset.relative_to(artifact)) for asset in assets]


def _available(artifact: Path, name: str) -> bool:
    """Whether top-level module `name` can be imported in Lambda: artifact, runtime or standard library."""
    in_artifact = (artifact / name / "__init__.py").is_file() or (artifact / f"{name}.py").is_file()
    return in_artifact or name in RUNTIME_PROVIDED or name in sys.stdlib_module_names


def _prune_xray_integrations(artifact: Path) -> list[str]:
    ext = artifact / XRAY_EXT
    if not ext.is_dir():
        return []
    removed = []
    for folder in sorted(path for path in ext.iterdir() if (path / "__init__.py").is_file()):
        if not _available(artifact, XRAY_EXT_TARGETS.get(folder.name, folder.name)):
            shutil.rmtree(folder)
            removed.append(str(folder.relative_to(artifact)))
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
