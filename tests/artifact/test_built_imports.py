"""What `src/Makefile` prunes from the `sam build` artifacts, checked against what the code imports.

The emulator tests (test_built_functions.py) run a few code paths; these tests cover every import
of the source tree instead. For each built function, in a fresh interpreter that sees only the
build folder and the Lambda runtime stand-in (`make lambda-runtime`: awslambdaric and boto3):
every `lead_caller` module is imported, and so is every module that any `lead_caller` function
imports lazily (an `import` inside a function body, which importing the module does not run);
the time zone of a phone number is resolved with the bundled data only (no /usr/share/zoneinfo);
and the X-Ray SDK patches what it patches when `XRaySdkTracing=true`.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from local.rie import default_python

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "lead_caller"
BUILD = ROOT / ".aws-sam" / "build"
FUNCTIONS = sorted(path for path in BUILD.glob("*Function") if (path / "lead_caller").is_dir())

pytestmark = [
    pytest.mark.artifact,
    pytest.mark.skipif(not FUNCTIONS, reason="no `sam build` output in .aws-sam/build (run `make sam-build`)"),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


@functools.cache
def source_imports() -> tuple[list[str], list[tuple[str, str]]]:
    """The `lead_caller` modules, handlers first, and every (module, name) any of them imports.

    `import a.b` gives ("a.b", ""); `from a import b` gives ("a", "b"); relative imports are
    resolved; imports under `if TYPE_CHECKING:` are left out (never run).
    """
    modules: list[str] = []
    imports: set[tuple[str, str]] = set()
    for path in sorted(SOURCE.rglob("*.py")):
        name = _module_name(path)
        modules.append(name)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        pending: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
        while pending:
            node = pending.pop()
            if _type_checking_only(node):
                continue
            if isinstance(node, ast.Import):
                imports.update((alias.name, "") for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                imports.update((base, alias.name) for alias in node.names if base != "__future__")
            pending.extend(ast.iter_child_nodes(node))
    modules.sort(key=lambda module: (not module.startswith("lead_caller.handlers"), module))
    return modules, sorted(imports)


# Runs in the build folder's interpreter: imports, then the phone's time zone with tzdata only.
PROBE = r"""
import importlib, json, sys, zoneinfo
build, modules, imports = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
zoneinfo.reset_tzpath([])  # no system time-zone files: only the bundled tzdata package
failures = []
for name in modules:
    try:
        module = importlib.import_module(name)
        if not module.__file__.startswith(build):
            failures.append(f"{name} imported from {module.__file__}")
    except Exception as error:
        failures.append(f"import {name}: {error!r}")
for module_name, attribute in imports:
    try:
        module = importlib.import_module(module_name)
        if attribute and not hasattr(module, attribute):
            importlib.import_module(f"{module_name}.{attribute}")
    except Exception as error:
        failures.append(f"from {module_name} import {attribute or '*'}: {error!r}")

from lead_caller import timezones
import phonenumbers, tzdata
zone = timezones.lead_zone(None, None, None, "+15125550142", "UTC")
tokyo = timezones.lead_zone(None, None, None, "+81312345678", "UTC")
when = zoneinfo.ZoneInfo(zone.name)

from aws_xray_sdk.core import patcher  # what XRaySdkTracing=true imports (Powertools' Tracer)
patcher.patch_all()  # the libraries present: botocore (runtime), sqlite3 (standard library)
patcher.patch(("httplib",))  # opt-in through Tracer(patch_modules=...)

print(json.dumps({
    "failures": failures,
    "zone": [zone.name, zone.rule], "tokyo": [tokyo.name, tokyo.rule], "utcoffset_key": when.key,
    "countries": len(timezones.available_timezones()) > 400,
    "tzdata": tzdata.__file__.startswith(build), "phonenumbers": phonenumbers.__file__.startswith(build),
    "patched": sorted(patcher._PATCHED_MODULES),
}))
"""


def _compiled_from_shipped_source(path: Path) -> bool:
    """A `__pycache__` .pyc whose .py ships beside it: Python runs that source's code either way
    (it recompiles when they disagree); its bytes name the folder it was compiled in."""
    return path.parent.name == "__pycache__" and (path.parent.parent / f"{path.name.split('.')[0]}.py").is_file()


def content_digest(build_dir: Path) -> str:
    """What a folder holds, as a digest of each file's path and bytes (bytecode of shipped sources
    aside, see above): folders with the same digest import the same code."""
    digest = hashlib.sha256()
    for path in sorted(item for item in build_dir.rglob("*") if item.is_file()):
        if path.suffix == ".pyc" and _compiled_from_shipped_source(path):
            continue
        digest.update(str(path.relative_to(build_dir)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


#: probe reports by folder content: the functions share one CodeUri, so `sam build` usually makes
#: identical folders; each distinct content is probed once (~1 s of CPU per probe)
_PROBED: dict[str, dict[str, Any]] = {}


def probe(build_dir: Path, modules: list[str], imports: list[tuple[str, str]]) -> dict[str, Any]:
    """The PROBE's report for this folder's content (run once per distinct content)."""
    key = content_digest(build_dir)
    if key not in _PROBED:
        _PROBED[key] = run_probe(build_dir, modules, imports)
    return _PROBED[key]


def test_a_probe_report_is_shared_only_by_folders_with_the_same_content(tmp_path: Path) -> None:
    """Two folders share a report only when their files match (a .pyc's mtime header aside)."""
    for name in ("a", "b"):
        (tmp_path / name / "pkg" / "__pycache__").mkdir(parents=True)
        (tmp_path / name / "pkg" / "mod.py").write_text("x = 1\n")
        (tmp_path / name / "pkg" / "__pycache__" / "mod.cpython-313.pyc").write_bytes(f"compiled in {name}".encode())
        (tmp_path / name / "lib" / "__pycache__").mkdir(parents=True)
        (tmp_path / name / "lib" / "__pycache__" / "sourceless.cpython-313.pyc").write_bytes(b"library code")
    assert content_digest(tmp_path / "a") == content_digest(tmp_path / "b")
    (tmp_path / "b" / "lib" / "__pycache__" / "sourceless.cpython-313.pyc").write_bytes(b"other library code")
    assert content_digest(tmp_path / "a") != content_digest(tmp_path / "b")
    (tmp_path / "b" / "lib" / "__pycache__" / "sourceless.cpython-313.pyc").write_bytes(b"library code")
    (tmp_path / "b" / "pkg" / "mod.py").write_text("x = 2\n")
    assert content_digest(tmp_path / "a") != content_digest(tmp_path / "b")
    (tmp_path / "b" / "pkg" / "mod.py").write_text("x = 1\n")
    (tmp_path / "b" / "pkg" / "extra.py").write_text("")
    assert content_digest(tmp_path / "a") != content_digest(tmp_path / "b")


@pytest.mark.parametrize("build_dir", FUNCTIONS, ids=lambda path: path.name)
def test_every_import_of_the_source_tree_resolves_in_the_built_function(build_dir: Path) -> None:
    """Nothing the code imports (at module level or lazily) was pruned; a phone's zone resolves from the artifact."""
    modules, imports = source_imports()
    assert "lead_caller.handlers.webhook" in modules
    assert any(module == "aws_lambda_powertools" and name == "Tracer" for module, name in imports)  # a lazy one
    report = probe(build_dir, modules, imports)
    assert report["failures"] == []
    assert report["zone"] == ["America/Chicago", "phone"]
    assert report["tokyo"] == ["Asia/Tokyo", "phone"]
    assert report["countries"]
    assert report["tzdata"], "tzdata imported from outside the build folder"
    assert report["phonenumbers"], "phonenumbers imported from outside the build folder"
    assert {"botocore", "httplib", "sqlite3"} <= set(report["patched"])


def run_probe(build_dir: Path, modules: list[str], imports: list[tuple[str, str]]) -> dict[str, Any]:
    """Run PROBE in a fresh interpreter that sees only the build folder and the Lambda runtime."""
    python = default_python()
    result = subprocess.run(
        [python, "-c", PROBE, str(build_dir) + "/", json.dumps(modules), json.dumps(imports)],
        capture_output=True,
        text=True,
        check=False,
        cwd=build_dir,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(build_dir),
            "PYTHONDONTWRITEBYTECODE": "1",  # /var/task is read-only
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_XRAY_SDK_ENABLED": "true",
            "LAMBDA_TASK_ROOT": str(build_dir),
        },
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize("build_dir", FUNCTIONS[:1], ids=lambda path: path.name)
def test_the_libraries_ship_bytecode_and_lead_caller_its_source(build_dir: Path) -> None:
    """What src/Makefile promises: sourceless libraries, lead_caller with source and bytecode, pruned data gone."""
    library_sources = [
        path for path in build_dir.rglob("*.py") if path.relative_to(build_dir).parts[0] != "lead_caller"
    ]
    assert library_sources == []
    assert (build_dir / "phonenumbers" / "tzdata" / "data0.pyc").is_file()
    assert (build_dir / "lead_caller" / "handlers" / "webhook.py").is_file()
    assert list((build_dir / "lead_caller" / "handlers" / "__pycache__").glob("webhook.*.pyc"))
    assert not (build_dir / "phonenumbers" / "geodata").exists()
    assert not list(build_dir.glob("aws_lambda_powertools/event_handler/openapi/swagger_ui/*.js"))
    assert not list(build_dir.glob("*.dist-info/RECORD"))
