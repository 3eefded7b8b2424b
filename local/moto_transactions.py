"""moto's TransactWriteItems without a deep copy of the whole table for every item written.

moto 5.2 backs up a table before a transaction by `copy.deepcopy(table)`, once per item of the
transaction, to restore it if the transaction is cancelled. With a 100-item claim on a table of
a few thousand items that is most of the time of the tests and of the local stack (a local
dispatch got slower with every lead stored). Here the backup is the items the transaction
names (at most 100, deep-copied: an update changes an item in place) and the length of the
table's stream, restored the same way when the transaction fails; the writes, the conditions
and the errors are moto's own code, unchanged.

Installed by importing `local.resources` (the tests' moto and the local stack's embedded AWS).
"""

from __future__ import annotations

import copy
import functools
import threading
import types
from typing import Any

import moto
from moto.dynamodb import models
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

#: the moto version whose transact_write_items this was written against (requirements-dev.txt)
MOTO_VERSION = "5.2.5"

_INSTALLED = threading.Lock()


class _Backup:
    """The items a transaction names, as they were before it, per table."""

    def __init__(self, backend: Any, transact_items: list[dict[str, Any]]) -> None:
        self.items: list[tuple[Table, DynamoType, DynamoType | None, Any]] = []
        self.whole: dict[str, Table] = {}  # a table whose items could not be told apart: moto's own backup
        self.streams: list[tuple[Any, int]] = []
        seen: set[tuple[int, Any, Any]] = set()
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            name = op.get("TableName") if isinstance(op, dict) else None
            table = backend.tables.get(name) if isinstance(name, str) else None
            if table is None or not isinstance(name, str):
                continue
            shard = table.stream_shard
            if shard is not None and all(s is not shard for s, _ in self.streams):
                self.streams.append((shard, len(shard.items)))
            keys = _keys(table, op)
            if keys is None:
                if name not in self.whole:
                    self.whole[name] = copy.deepcopy(table)
                continue
            if (id(table), *keys) in seen:
                continue
            seen.add((id(table), *keys))
            current = table.get_item(*keys)
            self.items.append((table, keys[0], keys[1], copy.deepcopy(current)))

    def restore(self, backend: Any) -> None:
        for table, hash_value, range_value, item in reversed(self.items):
            if range_value is not None:
                if item is None:
                    table.items.get(hash_value, {}).pop(range_value, None)
                    if hash_value in table.items and not table.items[hash_value]:
                        del table.items[hash_value]
                else:
                    table.items[hash_value][range_value] = item
            elif item is None:
                table.items.pop(hash_value, None)
            else:
                table.items[hash_value] = item
        for shard, length in self.streams:
            del shard.items[length:]
        backend.tables.update(self.whole)


def _keys(table: Table, op: dict[str, Any]) -> tuple[DynamoType, DynamoType | None] | None:
    """The (hash, range) key an operation writes, or None when moto would have to say (malformed)."""
    try:
        attrs = op["Item"] if "Item" in op else op["Key"]
        hash_value = DynamoType(attrs[table.hash_key_attr])
        range_value = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
    except (KeyError, TypeError, AttributeError):
        return None
    return hash_value, range_value


class _TableKeepingCopy(types.SimpleNamespace):
    """The `copy` module as moto's DynamoDB backend sees it: a Table is not copied (the backup
    above replaces that copy); everything else is copied as before."""

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)

    copy = staticmethod(copy.copy)


def install() -> bool:
    """Patch moto's DynamoDB backend (once); False when moto is not the version this was written for."""
    if moto.__version__ != MOTO_VERSION:
        return False
    with _INSTALLED:
        backend = models.DynamoDBBackend
        if getattr(backend.transact_write_items, "_item_backup", False):
            return True
        original = backend.transact_write_items

        @functools.wraps(original)
        def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
            backup = _Backup(self, transact_items)
            try:
                original(self, transact_items)
            except Exception:
                backup.restore(self)
                raise

        transact_write_items._item_backup = True  # type: ignore[attr-defined]
        models.copy = _TableKeepingCopy()  # type: ignore[attr-defined,assignment]
        backend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    return True
