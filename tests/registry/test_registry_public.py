"""Pins the public surface of ``ember.registry``; its errors share Ember's root."""

from __future__ import annotations

import types

import ember
import ember.registry as registry

EXPECTED = {
    "ConflictPolicy",
    "GroupEvent",
    "Name",
    "NameConflict",
    "NameLost",
    "Names",
    "NotLocal",
    "PgConfig",
    "PgCore",
    "ProcessGroups",
    "RELEASED",
    "Registration",
    "RegistryConfig",
    "SYSTEM_GROUP",
    "Tier",
    "TierUnavailable",
    "UnknownScope",
    "WaitTimeout",
    "demonitor",
    "lookup",
    "monitor",
    "register",
    "registered",
    "unregister",
    "wait_for",
    "whereis",
}


def test_registry_namespace_is_pinned() -> None:
    public = {
        n
        for n, v in vars(registry).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType) and n != "annotations"
    }
    assert public == EXPECTED


def test_errors_are_ember_errors_by_category() -> None:
    for cls in (registry.NameConflict, registry.TierUnavailable, registry.UnknownScope):
        assert issubclass(cls, ember.EmberError)
    assert issubclass(registry.NotLocal, ember.UsageError)
    assert issubclass(registry.WaitTimeout, TimeoutError)
    assert ember.Name is registry.Name


def test_configs_refuse_bad_values() -> None:
    import pytest

    for bad in ({"expect": 0}, {"shards": 0}, {"on_conflict": "maybe"}, {"member": "yes"}):
        with pytest.raises(ember.UsageError):
            registry.RegistryConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ember.UsageError):
        registry.PgConfig(default_scope="not a scope!")
    assert (
        registry.RegistryConfig.local().anti_entropy_interval
        < registry.RegistryConfig.wan().anti_entropy_interval
    )
