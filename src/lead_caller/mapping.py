"""Declarative field mapping: document field <- where it is in a CRM record.

Every source's built-in mapping is written in this language, and a user's
mapping (FIELD_MAPPINGS / FIELD_MAPPINGS_FILE) overrides it field by field, so
a custom CRM property can be routed into `context`, `about` or `labels`
without code. A rule ("spec") is one of:

    "properties.jobtitle"                       a path (dots; list items by index: "phones.0.value")
    {"path": "a.b"}                             the same, spelled out
    {"first_of": [spec, ...]}                   the first spec that yields a value
    {"join": [spec, ...], "separator": " "}     the values that exist, joined
    {"value": "literal"}                        a constant
    {"labels": [spec, ...]}                     a list of labels (strings, lists, "a,b" text)

Any rule may add "default" (used when it yields nothing) and "format"
("Status: {value}"). Path segments match keys exactly, or else ignoring case,
"_", "-" and spaces ("first_name" finds "firstName" and "First_Name").

Mappings are checked when the function starts: a bad one raises ConfigError
naming the source, the field and the problem.
"""

from __future__ import annotations

from collections.abc import KeysView, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from lead_caller.config import ConfigError
from lead_caller.contacts import RawContact

#: mapping targets: the document fields (document_id is derived from record_id)
TARGETS: dict[str, str] = {
    "record_id": "record_id",
    "name": "name",
    "email": "email",
    "contact_number": "phone",
    "alternate_number": "alternate_phone",
    "occupation": "occupation",
    "company_name": "company_name",
    "address": "address",
    "about": "about",
    "context": "context",
    "labels": "labels",
    "title": "title",
    "description": "description",
}
_KINDS = ("path", "first_of", "join", "value", "labels")
_MODIFIERS = ("default", "format", "separator")


_MISSING = object()


@lru_cache(maxsize=4096)
def fold(key: str) -> str:
    """A key without case and separators: "First_Name" -> "firstname"."""
    return "".join(ch for ch in key.lower() if ch.isalnum())


@lru_cache(maxsize=1024)
def _segments(path: str) -> tuple[tuple[str, str], ...]:
    """(segment, folded segment) of a dotted path, computed once per path."""
    return tuple((segment, fold(segment)) for segment in path.split("."))


def head(path: str) -> str:
    """The folded first segment of a dotted path: a record none of whose keys folds to it has
    nothing at the path (`lookup` is None)."""
    return _segments(path)[0][1]


class FoldIndex:
    """Folded keys of the mappings met while mapping one record, each folded once.

    A mapping of ~14 fields tries ~100 alias paths against the same record: without
    this every miss re-folded every key of the object (~2,400 `fold` calls per lead).
    """

    def __init__(self) -> None:
        self.folded: dict[int, tuple[Mapping[Any, Any], dict[str, Any]]] = {}

    def fold(self, mapping: Mapping[Any, Any]) -> tuple[Mapping[Any, Any], dict[str, Any]]:
        """Fold the keys of `mapping` (the first key wins when two fold alike) and remember them."""
        folded: dict[str, Any] = {}
        for key, value in mapping.items():
            folded.setdefault(fold(str(key)), value)
        entry = (mapping, folded)  # keeps the mapping alive, so its id cannot be reused meanwhile
        self.folded[id(mapping)] = entry
        return entry

    def keys(self, mapping: Mapping[Any, Any]) -> KeysView[str]:
        """The folded keys of `mapping` (what `head` of a path is compared with)."""
        entry = self.folded.get(id(mapping))
        if entry is None or entry[0] is not mapping:
            entry = self.fold(mapping)
        return entry[1].keys()

    def find(self, mapping: Mapping[Any, Any], wanted: str) -> Any:
        """The value of the first key of `mapping` that folds to `wanted`, or None."""
        entry = self.folded.get(id(mapping))
        if entry is None or entry[0] is not mapping:
            entry = self.fold(mapping)
        return entry[1].get(wanted)


def lookup(record: Any, path: str, index: FoldIndex | None = None) -> Any:
    """The value at a dotted path, or None. Keys match exactly, else folded."""
    current = record
    for segment, wanted in _segments(path):
        if type(current) is dict or isinstance(current, Mapping):  # the exact type first: cheaper than the ABC
            found = current.get(segment, _MISSING)
            if found is not _MISSING:
                current = found
            elif index is not None:
                entry = index.folded.get(id(current))
                if entry is None or entry[0] is not current:
                    entry = index.fold(current)
                current = entry[1].get(wanted)
            else:
                current = next((value for key, value in current.items() if fold(str(key)) == wanted), None)
        elif isinstance(current, list) and segment.isdigit():
            position = int(segment)
            current = current[position] if position < len(current) else None
        else:
            return None
        if current is None:
            return None
    return current


def _scalar_text(value: Any) -> str | None:
    if type(value) is str:  # the common case, without the Mapping ABC check below (~0.3 µs each)
        return value.strip() or None
    if value is None or isinstance(value, (bool, Mapping, list)):
        return None
    text = str(value).strip()
    return text or None


@dataclass(frozen=True)
class Rule:
    """One compiled spec."""

    kind: str
    argument: Any
    default: Any = None
    format: str | None = None
    separator: str = " "

    @cached_property
    def _top_key(self) -> tuple[str, str] | None:
        """(key, folded key) when the rule is a bare one-segment path: the common alias, read inline."""
        if self.kind != "path" or self.default is not None or self.format or "." in self.argument:
            return None
        return self.argument, fold(self.argument)

    @cached_property
    def top_keys(self) -> frozenset[str] | None:
        """The folded top-level keys the rule can read, or None when it may yield without any.

        A rule whose paths all start at keys a record does not have yields nothing (None), so
        `FieldMapping.apply` skips it without evaluating its aliases one by one. None (never
        skipped) for a rule that yields without the record: a `value`, or a `default` anywhere.
        """
        if self.default is not None or self.kind == "value":
            return None
        if self.kind == "path":
            return frozenset({head(self.argument)})
        keys: set[str] = set()
        for rule in self.argument:
            rule_keys = rule.top_keys
            if rule_keys is None:
                return None
            keys |= rule_keys
        return frozenset(keys)

    def evaluate(self, record: Any, index: FoldIndex | None = None) -> Any:
        """The rule's value for a record (a string, a list for labels, or None)."""
        if self.kind == "path":  # the most common kind, inlined (a mapping evaluates ~100 rules per lead)
            found = lookup(record, self.argument, index)
            value = found if isinstance(found, list) else _scalar_text(found)
        else:
            value = self._raw(record, index)
        if value in (None, "", []):
            value = self.default
        if self.format and isinstance(value, str):
            value = self.format.replace("{value}", value)
        return value

    def _raw(self, record: Any, index: FoldIndex | None) -> Any:
        if self.kind == "path":
            found = lookup(record, self.argument, index)
            return found if isinstance(found, list) else _scalar_text(found)
        if self.kind == "value":
            return self.argument
        if self.kind == "first_of":
            flat = index is not None and type(record) is dict
            for rule in self.argument:
                top = rule._top_key if flat else None
                if top is not None:  # same as rule.evaluate(record, index), without three calls per alias
                    found = record.get(top[0], _MISSING)
                    if found is _MISSING:
                        found = index.find(record, top[1])  # type: ignore[union-attr]
                    value = found if isinstance(found, list) else _scalar_text(found)
                else:
                    value = rule.evaluate(record, index)
                if value not in (None, "", []):
                    return value
            return None
        if self.kind == "join":
            parts = [rule.evaluate(record, index) for rule in self.argument]
            texts = [_scalar_text(part) for part in parts if not isinstance(part, list)]
            return self.separator.join(text for text in texts if text) or None
        labels: list[str] = []
        for rule in self.argument:
            value = rule.evaluate(record, index)
            items = value if isinstance(value, list) else [value]
            labels.extend(text for item in items if (text := _scalar_text(item)))
        return labels


def compile_rule(spec: Any, where: str) -> Rule:
    """Compile one spec; raise ConfigError naming `where` when it is malformed."""
    if isinstance(spec, str):
        if not spec.strip():
            raise ConfigError(f"{where}: a path must not be empty")
        return Rule("path", spec.strip())
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: expected a path string or an object, got {type(spec).__name__}")
    kinds = [key for key in spec if key in _KINDS]
    unknown = [key for key in spec if key not in _KINDS and key not in _MODIFIERS]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(_KINDS + _MODIFIERS)})")
    if len(kinds) != 1:
        raise ConfigError(f"{where}: needs exactly one of {', '.join(_KINDS)}, got {len(kinds)}")
    kind = kinds[0]
    argument = spec[kind]
    if kind == "path":
        return _with_modifiers(compile_rule(argument, where), spec, where)
    if kind in ("first_of", "join", "labels"):
        if not isinstance(argument, Sequence) or isinstance(argument, str) or not argument:
            raise ConfigError(f"{where}.{kind}: expected a non-empty list of rules")
        compiled = tuple(compile_rule(item, f"{where}.{kind}[{index}]") for index, item in enumerate(argument))
        return _with_modifiers(Rule(kind, compiled), spec, where)
    if isinstance(argument, (Mapping, list)) or argument is None:
        raise ConfigError(f"{where}.value: expected text or a number")
    return _with_modifiers(Rule("value", str(argument)), spec, where)


def _with_modifiers(rule: Rule, spec: Mapping[str, Any], where: str) -> Rule:
    fmt = spec.get("format")
    if fmt is not None and (not isinstance(fmt, str) or "{value}" not in fmt):
        raise ConfigError(f"{where}.format: must be text containing {{value}}")
    separator = spec.get("separator", rule.separator)
    if not isinstance(separator, str):
        raise ConfigError(f"{where}.separator: must be text")
    default = spec.get("default")
    if default is not None and not isinstance(default, (str, int, float, list)):
        raise ConfigError(f"{where}.default: must be text, a number or a list")
    return Rule(rule.kind, rule.argument, default if default is not None else rule.default, fmt, separator)


class FieldMapping:
    """A compiled mapping: target field -> Rule."""

    def __init__(self, rules: Mapping[str, Rule]) -> None:
        self.rules = dict(rules)

    @classmethod
    def compile(
        cls, default: Mapping[str, Any], override: Mapping[str, Any] | None = None, where: str = "mapping"
    ) -> FieldMapping:
        """The built-in mapping with a user's override applied field by field (null removes a field)."""
        merged = {**default, **(override or {})}
        rules: dict[str, Rule] = {}
        for field_name, spec in merged.items():
            if field_name not in TARGETS:
                raise ConfigError(f"{where}.{field_name}: not a document field (use one of {', '.join(TARGETS)})")
            if spec is None:
                continue
            rules[field_name] = compile_rule(spec, f"{where}.{field_name}")
        return cls(rules)

    def apply(self, record: Mapping[str, Any]) -> RawContact:
        """The RawContact of a record."""
        values: dict[str, Any] = {}
        index = FoldIndex()  # each object of the record has its keys folded once, whatever the rules
        present = index.keys(record)  # the record's top-level keys, folded
        for field_name, rule in self.rules.items():
            wanted = rule.top_keys
            # a rule none of whose paths starts at a key of the record yields nothing: skip its aliases
            value = None if wanted is not None and present.isdisjoint(wanted) else rule.evaluate(record, index)
            attribute = TARGETS[field_name]
            if attribute == "labels":
                values["labels"] = [str(v) for v in (value if isinstance(value, list) else [value]) if v]
            elif isinstance(value, list):
                values[attribute] = _scalar_text(value[0]) if value else None
            else:
                values[attribute] = _scalar_text(value)
        if values.get("alternate_phone") and values.get("alternate_phone") == values.get("phone"):
            values["alternate_phone"] = None  # e.g. a lone mobile number, found by both rules
        return RawContact(**values)


def parse_mappings(raw: Any, where: str) -> dict[str, dict[str, Any]]:
    """Validate the shape {source: {field: spec}} of a FIELD_MAPPINGS document (specs compiled later)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a JSON object keyed by source")
    for source, fields in raw.items():
        if not isinstance(fields, Mapping):
            raise ConfigError(f"{where}.{source} must be an object of document field -> rule")
        for field_name, spec in fields.items():
            if field_name not in TARGETS:
                raise ConfigError(
                    f"{where}.{source}.{field_name}: not a document field (use one of {', '.join(TARGETS)})"
                )
            if spec is not None:
                compile_rule(spec, f"{where}.{source}.{field_name}")
    return {str(source): dict(fields) for source, fields in raw.items()}
