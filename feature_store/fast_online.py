"""A fast online read path over Feast's own Redis layout (Feast stays writer and source of truth).

It reads what Feast's `RedisOnlineStore` wrote, with the same keys and serialization: one hash
per entity at `serialize_entity_key(key, v3) + project`, fields `mmh3("<view>:<feature>")` holding
a serialized `feast.types.Value` (and `_ts:<view>`, which `to_dict()` never shows: not read).
The SDK resolves the registry and builds protobuf responses on every call; here that is done once
per feature-ref list, and requests for different entities (1 user + N tracks) share ONE pipeline.

TTL: Feast 0.67's Redis online read ignores `FeatureView.ttl` (`online_read` returns stored
values however old and marks them PRESENT; only the precomputed FeatureService path flags
OUTSIDE_MAX_AGE, and `to_dict()` shows the value even then), so this reader returns stored values
regardless of age too. Only `key_ttl_seconds` (a Redis EXPIRE set by Feast's writes) removes
values, and both paths then see a missing key: None.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from feast import FeatureStore, FeatureView
from feast.infra.key_encoding_utils import _serialize_val
from feast.infra.online_stores.helpers import _mmh3, compute_versioned_name
from feast.infra.online_stores.redis import RedisOnlineStore
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
from feast.value_type import ValueType

# One request: feature refs ("view:feature") and the entity rows to read them for.
FeatureRequest = tuple[Sequence[str], Sequence[Mapping[str, Any]]]
# The shape of `OnlineResponse.to_dict()`: join-key columns and feature columns.
FeatureColumns = dict[str, list[Any]]

_U32 = struct.Struct("<I").pack
_TYPE_LEN = struct.Struct("<II").pack
_I64 = struct.Struct("<q").pack
_PARSE = ValueProto.FromString
# Type tags written into entity keys (the proto enum's ints, as key_encoding_utils packs them).
_STRING, _INT64 = ValueType.STRING.value, ValueType.INT64.value
_PLAIN_KINDS = frozenset(
    {"string_val", "int64_val", "int32_val", "double_val", "float_val", "bool_val", "bytes_val"}
)
_FIXED_WIDTH = {  # value type -> (tag byte, Value size, payload unpacker)
    ValueType.DOUBLE: (0x29, 9, struct.Struct("<d").unpack_from),
    ValueType.FLOAT: (0x35, 5, struct.Struct("<f").unpack_from),
}
_BOOLS = {b"8\x01": True, b"8\x00": False}
_NATIVE_KEY_TYPES = {ValueType.STRING: str, ValueType.INT64: int, ValueType.INT32: int}
_PLAN_CACHE_SIZE = 1024


def _entity_bytes(value: Any, vtype: ValueType) -> bytes:
    """A join key value as serialize_entity_key v3 writes it (type, length, bytes)."""
    kind = type(value)
    if kind is str and vtype == ValueType.STRING:
        raw = value.encode()
        return _TYPE_LEN(_STRING, len(raw)) + raw
    if kind is int and vtype == ValueType.INT64:
        return _TYPE_LEN(_INT64, 8) + _I64(value)
    # Anything else goes through Feast's own conversion, so coercions (e.g. 5 -> "5" for a
    # String key) are the SDK's.
    proto = python_values_to_proto_values([value], vtype)[0]
    raw, value_type = _serialize_val(proto.WhichOneof("val"), proto)
    return _TYPE_LEN(value_type, len(raw)) + raw


def _entity_echo(values: list[Any], vtype: ValueType) -> list[Any]:
    """The join key column `to_dict()` shows: the values after Feast's proto round trip."""
    native = _NATIVE_KEY_TYPES.get(vtype)
    if native is not None and all(type(v) is native for v in values):
        return values
    protos = python_values_to_proto_values(values, vtype)
    return [feast_value_type_to_python_type(p) for p in protos]


def _decoder(vtype: ValueType) -> Callable[[bytes | None], Any]:
    """bytes of a stored ValueProto -> the Python value `to_dict()` gives for it."""
    plain = _PLAIN_KINDS
    if vtype in (ValueType.UUID, ValueType.TIME_UUID):
        plain = plain - {"string_val"}  # Feast turns those strings into uuid.UUID

    def generic(raw: bytes | None) -> Any:
        if not raw:  # absent entity/field, or an empty Value: Feast returns None
            return None
        proto = _PARSE(raw)
        kind = proto.WhichOneof("val")
        if kind in plain:
            return getattr(proto, kind)
        return feast_value_type_to_python_type(proto, vtype)

    # The common feature types skip the proto object when the bytes have the expected shape
    # (the oneof's tag byte, then the payload); anything else (null, another kind) is generic.
    def fixed_width(raw: bytes | None) -> Any:  # double / float: widened as upb does
        if raw and len(raw) == size and raw[0] == tag:
            return unpack(raw, 1)[0]
        return generic(raw)

    def int64(raw: bytes | None) -> Any:
        if raw and len(raw) <= 6 and raw[0] == 0x20:  # a varint below 2**35: non-negative
            result = shift = 0
            for byte in raw[1:]:
                result |= (byte & 0x7F) << shift
                shift += 7
            return result
        return generic(raw)

    def boolean(raw: bytes | None) -> Any:
        return _BOOLS[raw] if raw in _BOOLS else generic(raw)

    def string(raw: bytes | None) -> Any:
        if raw and len(raw) > 1 and raw[0] == 0x12 and raw[1] < 0x80 and len(raw) == raw[1] + 2:
            return raw[2:].decode()
        return generic(raw)

    if vtype in _FIXED_WIDTH:
        tag, size, unpack = _FIXED_WIDTH[vtype]
        return fixed_width
    special = {ValueType.INT64: int64, ValueType.BOOL: boolean, ValueType.STRING: string}
    return special.get(vtype, generic)


@dataclass(frozen=True, slots=True)
class _View:
    join_keys: tuple[tuple[str, ValueType], ...]  # sorted by name, as serialize_entity_key does
    key_head: bytes  # key count + join key names: the same for every entity of this view
    fields: Mapping[str, tuple[bytes, ValueType]]  # feature -> (hash field, type)


@dataclass(frozen=True, slots=True)
class _Group:
    view_name: str
    view: _View
    fields: list[bytes]
    columns: list[str]
    decoders: list[Callable[[bytes | None], Any]]


class _Plan(NamedTuple):
    groups: list[_Group]  # one per feature view, in first-requested order
    key_types: dict[str, ValueType]  # join key -> entity value type


def _split_ref(ref: str, schema: Mapping[str, Collection[str]]) -> tuple[str, str]:
    view, sep, feature = ref.partition(":")
    if not sep or not view or not feature:
        raise ValueError(f"feature ref {ref!r} is not of the form 'feature_view:feature'")
    if view not in schema:
        raise ValueError(f"unknown feature view {view!r} (in feature ref {ref!r})")
    if feature not in schema[view]:
        raise ValueError(f"feature view {view!r} has no feature {feature!r}")
    return view, feature


def _registry_views(store: FeatureStore) -> list[FeatureView]:
    return [*store.list_feature_views(allow_cache=True), *store.list_stream_feature_views(True)]


def validate_feature_refs(store: FeatureStore, refs: Sequence[str]) -> None:
    """The reader's ref check, for callers of the SDK path (whose errors are less clear)."""
    schema = {fv.name: {f.name for f in fv.features} for fv in _registry_views(store)}
    for ref in refs:
        _split_ref(ref, schema)


class RedisFeatureReader:
    """Reads features of a Feast project straight from its Redis online store.

    `read([(refs, rows), ...])` returns, per request, exactly what
    `store.get_online_features(refs, rows).to_dict()` would (same values, None for missing
    entities or features), all requests in one Redis round trip. Call `refresh()` after
    `store.apply(...)` changes feature views. A given `client` must not decode responses.
    Not served: on-demand views (computed at request time, not stored) and entityless views.
    """

    def __init__(self, store: FeatureStore, client: Any = None) -> None:
        config = store.config
        if config.online_store.type != "redis":
            raise ValueError(f"online store is {config.online_store.type!r}, not 'redis'")
        if config.entity_key_serialization_version != 3:
            raise ValueError("only entity_key_serialization_version 3 is supported")
        self._store = store
        # Feast's own client factory: same connection-string parsing, cluster and sentinel.
        self._client = client or RedisOnlineStore()._get_client(config.online_store)
        self._project = config.project.encode()
        self._versioned = bool(
            getattr(config.registry, "enable_online_feature_view_versioning", False)
        )
        self._plans: dict[tuple[tuple[str, ...], bool], _Plan] = {}
        self.refresh()

    def refresh(self) -> None:
        """Re-read feature views from the registry (after `apply`)."""
        views: dict[str, _View] = {}
        for fv in _registry_views(self._store):
            name = compute_versioned_name(fv, self._versioned)
            keys = tuple(sorted((c.name, c.dtype.to_value_type()) for c in fv.entity_columns))
            head = _U32(len(keys)) + b"".join(
                _TYPE_LEN(_STRING, len(k.encode())) + k.encode() for k, _ in keys
            )
            fields = {
                f.name: (_mmh3(f"{name}:{f.name}"), f.dtype.to_value_type()) for f in fv.features
            }
            views[fv.name] = _View(keys, head, fields)
        self._views = views
        self._plans = {}

    def ping(self) -> None:
        self._client.ping()

    def _plan(self, refs: tuple[str, ...], full_names: bool) -> _Plan:
        plan = self._plans.get((refs, full_names))
        if plan is not None:
            return plan
        schema = {name: v.fields for name, v in self._views.items()}
        groups: dict[str, _Group] = {}
        seen: set[str] = set()
        for ref in refs:
            view_name, feature = _split_ref(ref, schema)
            view = self._views[view_name]
            if not view.join_keys:
                raise ValueError(f"feature view {view_name!r} has no entity: not supported")
            column = f"{view_name}__{feature}" if full_names else feature
            if column in seen:  # Feast raises FeatureNameCollisionError here
                raise ValueError(f"feature {column!r} requested twice (use full_feature_names)")
            seen.add(column)
            group = groups.setdefault(view_name, _Group(view_name, view, [], [], []))
            field, vtype = view.fields[feature]
            group.fields.append(field)
            group.columns.append(column)
            group.decoders.append(_decoder(vtype))
        # Join keys of the requested views: echoed in the output when the rows carry them.
        key_types = {k: t for g in groups.values() for k, t in g.view.join_keys}
        if len(self._plans) >= _PLAN_CACHE_SIZE:
            self._plans.clear()
        plan = self._plans[(refs, full_names)] = _Plan(list(groups.values()), key_types)
        return plan

    def read(
        self, requests: Sequence[FeatureRequest], full_feature_names: bool = False
    ) -> list[FeatureColumns]:
        """One `to_dict()`-shaped result per (feature refs, entity rows) request."""
        results: list[FeatureColumns] = []
        pending: list[tuple[_Group, list[list[Any]], list[int]]] = []  # reply slot per row
        n_commands = 0
        with self._client.pipeline(transaction=False) as pipe:
            for refs, rows in requests:
                groups, key_types = self._plan(tuple(refs), full_feature_names)
                out: FeatureColumns = {}
                for key in rows[0] if rows else ():
                    if key in key_types:
                        out[key] = _entity_echo([row[key] for row in rows], key_types[key])
                for group in groups:
                    head, join_keys = group.view.key_head, group.view.join_keys
                    # Rows repeating an entity (e.g. the user on every user+track row) share
                    # one HMGET, as Feast's own read deduplicates them.
                    slots: dict[bytes, int] = {}
                    row_slots: list[int] = []
                    for row in rows:
                        try:
                            parts = [_entity_bytes(row[k], t) for k, t in join_keys]
                        except KeyError as exc:
                            raise ValueError(
                                f"entity row {dict(row)!r} lacks join key {exc.args[0]!r} "
                                f"of feature view {group.view_name!r}"
                            ) from None
                        entity_key = head + b"".join(parts) + self._project
                        slot = slots.get(entity_key)
                        if slot is None:
                            slot = slots[entity_key] = n_commands
                            n_commands += 1
                            pipe.hmget(entity_key, group.fields)
                        row_slots.append(slot)
                    columns = [out.setdefault(c, []) for c in group.columns]
                    pending.append((group, columns, row_slots))
                results.append(out)
            replies = pipe.execute()
        for group, columns, row_slots in pending:
            group_replies = [replies[slot] for slot in row_slots]
            for i, (values, decode) in enumerate(zip(columns, group.decoders, strict=True)):
                values.extend([decode(reply[i]) for reply in group_replies])
        return results

    def get_online_features(
        self,
        features: Sequence[str],
        entity_rows: Sequence[Mapping[str, Any]],
        full_feature_names: bool = False,
    ) -> FeatureColumns:
        """Drop-in for `store.get_online_features(features, entity_rows).to_dict()`."""
        return self.read([(features, entity_rows)], full_feature_names)[0]
