"""Run a `sam build` function folder under the AWS Lambda Runtime Interface Emulator, without Docker.

The SAM CLI ships the emulator (``aws-lambda-rie-<arch>``). It is started as
``aws-lambda-rie <python> -m awslambdaric <handler>`` with the build folder as
working directory, ``LAMBDA_TASK_ROOT`` and first entry of ``PYTHONPATH`` (the
bundled dependencies win, as on Lambda). The interpreter stands in for the
Lambda runtime: it must provide ``awslambdaric`` and ``boto3``.

The emulator initialises the function on the first invoke and logs
``INIT REPORT(durationMs: X)``: that is the cold-start init duration. (The
``Init Duration`` of its ``REPORT`` line is not: the emulator prints a
near-zero placeholder there, so it is only used when no ``INIT REPORT`` line
was logged.)

Usage::

    with run_built_function(build_dir, "pkg.module.handler", env) as function:
        result = function.invoke({"key": "value"})
        print(function.init_duration_ms())
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

__all__ = [
    "FunctionError",
    "RieError",
    "RieFunction",
    "default_python",
    "lambda_environment",
    "rie_binary",
    "run_built_function",
]

ROOT = Path(__file__).resolve().parent.parent
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
_ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
_INIT_REPORT = re.compile(r"INIT REPORT\(durationMs: ([0-9.]+)\)")
_REPORT_INIT = re.compile(r"REPORT RequestId: \S+\s+Init Duration: ([0-9.]+) ms")


class RieError(RuntimeError):
    """The emulator could not start, or answered an invoke with a non-200 status."""


class FunctionError(RieError):
    """The function raised: the emulator answered 200 with Lambda's error payload (``payload``)."""

    def __init__(self, message: str, payload: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.payload = dict(payload)


def rie_binary(root: Path = ROOT) -> Path | None:
    """The emulator binary for this machine's architecture under ``.tools/sam``, or None."""
    arch = _ARCHES.get(platform.machine().lower())
    if arch is None:
        return None
    pattern = f"lib/python3*/site-packages/samcli/local/rapid/aws-lambda-rie-{arch}"
    for candidate in sorted((root / ".tools" / "sam").glob(pattern)):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def default_python(root: Path = ROOT) -> str:
    """The Lambda runtime stand-in (`make lambda-runtime`: awslambdaric + boto3 only) when present,
    else the project venv's interpreter, else the current one."""
    for candidate in (root / ".tools" / "lambda-runtime" / "bin" / "python", root / ".venv" / "bin" / "python"):
        if candidate.exists():
            return str(candidate)
    return sys.executable


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RieFunction:
    """A running emulator serving one function on 127.0.0.1."""

    def __init__(self, process: subprocess.Popen[str], port: int, timeout: float) -> None:
        self.process = process
        self.port = port
        self.timeout = timeout
        self.invocations = 0
        self._lines: list[str] = []
        self._lock = threading.Lock()
        assert process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(process.stdout,), name="rie-output", daemon=True)
        self._reader.start()

    @property
    def url(self) -> str:
        """The invoke URL of the emulator."""
        return f"http://127.0.0.1:{self.port}{INVOKE_PATH}"

    @property
    def output(self) -> str:
        """Everything the emulator and the function logged so far (stdout and stderr)."""
        with self._lock:
            return "".join(self._lines)

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._lock:
                self._lines.append(line)

    def wait_ready(self, seconds: float = 20.0) -> None:
        """Wait until the emulator accepts connections; RieError if it exits or the wait runs out."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RieError(f"the emulator exited with status {self.process.returncode}:\n{self.output}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return
            time.sleep(0.05)
        raise RieError(f"the emulator did not listen on 127.0.0.1:{self.port} within {seconds} s:\n{self.output}")

    def invoke(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Invoke the function with ``event``; its JSON result (RieError/FunctionError on failure)."""
        request = urllib.request.Request(  # noqa: S310 - a fixed http://127.0.0.1 URL
            self.url, data=json.dumps(event).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        self.invocations += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout + 10) as response:  # noqa: S310
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        except OSError as error:
            raise RieError(f"invoke failed: {error}\n{self.output}") from error
        text = body.decode("utf-8", "replace")
        if status != 200:
            raise RieError(f"the emulator answered HTTP {status}: {text}\n{self.output}")
        try:
            result = json.loads(text)
        except ValueError:
            raise RieError(f"the function returned non-JSON: {text!r}") from None
        if not isinstance(result, dict):
            raise RieError(f"the function returned {type(result).__name__}, expected a JSON object: {text}")
        if "errorType" in result and "errorMessage" in result:
            raise FunctionError(f"{result['errorType']}: {result['errorMessage']}\n{self.output}", result)
        return result

    def init_duration_ms(self, wait: float = 2.0) -> float | None:
        """The init (cold start) duration in ms the emulator reported; None before the first invoke."""
        if self.invocations == 0:
            return None
        deadline = time.monotonic() + wait
        while True:
            text = self.output
            match = _INIT_REPORT.search(text) or _REPORT_INIT.search(text)
            if match is not None:
                return float(match.group(1))
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def stop(self) -> None:
        """Terminate the emulator and its runtime process (idempotent)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):  # the runtime child, should it have outlived the emulator
            os.killpg(self.process.pid, signal.SIGKILL)
        self._reader.join(timeout=2)
        if self.process.stdout is not None:
            self.process.stdout.close()


def lambda_environment(
    build_dir: Path, function_name: str, memory_size: int, timeout: int, env: Mapping[str, str]
) -> dict[str, str]:
    """A Lambda-like process environment: nothing inherited but PATH; ``env`` wins."""
    base = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "PYTHONPATH": str(build_dir),
        "PYTHONDONTWRITEBYTECODE": "1",  # leave the artifact untouched (Lambda's /var/task is read-only)
        "LAMBDA_TASK_ROOT": str(build_dir),
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_size),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(timeout),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local/rie",
    }
    return {**base, **env}


@contextlib.contextmanager
def run_built_function(
    build_dir: Path,
    handler: str,
    env: Mapping[str, str],
    python: str | None = None,
    *,
    function_name: str | None = None,
    memory_size: int = 512,
    timeout: int = 30,
    ready_timeout: float = 20.0,
) -> Iterator[RieFunction]:
    """Serve the function in ``build_dir`` (handler ``module.function``) under the emulator.

    ``env`` is the function's environment; ``python`` the runtime interpreter
    (default: the project venv). The emulator is terminated on exit.
    """
    binary = rie_binary()
    if binary is None:
        raise RieError(f"no aws-lambda-rie binary for {platform.machine()} under {ROOT / '.tools' / 'sam'}")
    build_dir = Path(build_dir).resolve()
    if not build_dir.is_dir():
        raise RieError(f"build folder {build_dir} does not exist (run `make sam-build`)")
    port, runtime_api_port = _free_port(), _free_port()
    while runtime_api_port == port:
        runtime_api_port = _free_port()
    command = [
        str(binary),
        "--runtime-interface-emulator-address",
        f"127.0.0.1:{port}",
        "--runtime-api-address",  # the default, 127.0.0.1:9001, would clash between emulators
        f"127.0.0.1:{runtime_api_port}",
        python or default_python(),
        "-m",
        "awslambdaric",
        handler,
    ]
    environment = lambda_environment(build_dir, function_name or build_dir.name, memory_size, timeout, env)
    process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        command,
        cwd=build_dir,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,  # its own process group, so stop() also reaches the runtime child
    )
    function = RieFunction(process, port, timeout)
    try:
        function.wait_ready(ready_timeout)
        yield function
    finally:
        function.stop()
