"""`lead-caller`: one command to operate lead-caller (installed into .venv by `make venv`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from ops import doctor, leads, replay, secrets, smoke, status, suppress
from ops.target import TargetError

#: every command module exposes `register(subparsers)`; its parser sets `func(args) -> int`
COMMANDS: list[ModuleType] = [status, leads, replay, doctor, secrets, smoke, suppress]


def build_parser(commands: Sequence[ModuleType] | None = None) -> argparse.ArgumentParser:
    """The parser with every command registered."""
    parser = argparse.ArgumentParser(
        prog="lead-caller",
        description="Operate lead-caller: a deployed stack (--stack NAME) or the local one (--local).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in commands or COMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors a person can fix are one line on stderr (exit 2)."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except TargetError as error:
        print(f"lead-caller: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
