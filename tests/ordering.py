"""The order parallel test runs take the tests in (used by tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def xdist_shares(total: int, workers: int) -> list[int]:
    """How many tests each worker gets first from xdist's work stealing (its arithmetic)."""
    sizes: list[int] = []
    remaining = total
    for share in range(workers):
        sizes.append(remaining // (workers - share))
        remaining -= sizes[-1]
    return sizes


def spread_long_modules(
    items: Sequence[T], module_of: Callable[[T], str | None], longest: Sequence[str], workers: int
) -> list[T]:
    """The same items, each module `module_of` names kept in one block (its fixtures start once):
    each worker's first share starts with one of the `longest` modules (round robin) and holds
    its part of the other named modules in its middle; unnamed items keep their order."""
    blocks: dict[str, list[T]] = {}
    rest: list[T] = []
    for item in items:
        module = module_of(item)
        if module is None:
            rest.append(item)
        else:
            blocks.setdefault(module, []).append(item)
    if not blocks or not rest:
        return list(items)
    workers = max(1, workers)
    first: list[list[T]] = [[] for _ in range(workers)]
    middle: list[list[T]] = [[] for _ in range(workers)]
    for index, block in enumerate([blocks.pop(name) for name in longest if name in blocks]):
        first[index % workers].extend(block)
    for index, block in enumerate(blocks.values()):
        middle[index % workers].extend(block)
    spread: list[T] = []
    taken = 0
    for share, size in enumerate(xdist_shares(len(items), workers)):
        fill = max(0, size - len(first[share]) - len(middle[share]))
        part = rest[taken : taken + fill] if share < workers - 1 else rest[taken:]
        taken += len(part)
        spread += first[share] + part[: len(part) // 2] + middle[share] + part[len(part) // 2 :]
    return spread
