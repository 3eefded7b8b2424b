"""tests/ordering.py: parallel runs start each worker with a long module, and lose no test."""

from __future__ import annotations

import pytest

from tests.ordering import spread_long_modules, xdist_shares


def _items(units: int) -> list[str]:
    modules = {"long_a": 5, "long_b": 3, "long_c": 4, "other_x": 2, "other_y": 6}
    items = [f"unit-{index}" for index in range(units)]
    items += [f"{module}:{index}" for module, count in modules.items() for index in range(count)]
    return items


def _module(item: str) -> str | None:
    return item.split(":")[0] if ":" in item else None


def _blocks_are_whole(spread: list[str]) -> bool:
    seen: list[str] = []
    for item in spread:
        module = _module(item)
        if module is not None and (not seen or seen[-1] != module):
            if module in seen:
                return False
            seen.append(module)
    return True


@pytest.mark.parametrize("workers", [1, 2, 3, 5])
@pytest.mark.parametrize("units", [0, 4, 100, 1391])
def test_every_test_once_each_module_in_one_block(workers: int, units: int) -> None:
    items = _items(units)

    spread = spread_long_modules(items, _module, ("long_a", "long_b", "long_c"), workers)

    assert sorted(spread) == sorted(items)
    assert _blocks_are_whole(spread)
    assert [item for item in spread if _module(item) is None] == [item for item in items if _module(item) is None]


def test_each_worker_share_starts_with_a_long_module() -> None:
    items = _items(1391)

    spread = spread_long_modules(items, _module, ("long_a", "long_b", "long_c"), 3)

    starts = [0]
    for size in xdist_shares(len(spread), 3)[:-1]:
        starts.append(starts[-1] + size)
    assert [_module(spread[start]) for start in starts] == ["long_a", "long_b", "long_c"]


def test_the_shares_are_xdists() -> None:
    assert xdist_shares(10, 3) == [3, 3, 4]
    assert sum(xdist_shares(1452, 3)) == 1452
