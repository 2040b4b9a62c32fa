"""``ClusterConfig``: validation, and configs stored by an older version."""

from __future__ import annotations

import pytest

from ember import UsageError
from ember.consensus._cluster_config import ClusterConfig


def test_compaction_keep_defaults_to_etcds_5000_and_accepts_zero() -> None:
    assert ClusterConfig().compaction_keep == 5_000
    assert ClusterConfig(compaction_keep=0).compaction_keep == 0


@pytest.mark.parametrize("bad", [-1, True, 1.5, "10"])
def test_compaction_keep_must_be_a_non_negative_int(bad: object) -> None:
    with pytest.raises(UsageError, match="compaction_keep"):
        ClusterConfig(compaction_keep=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("snapshot_every", 0),
        ("max_voters", True),
        ("session_limit", 2.0),
        ("retry_window", 0),
        ("retry_window", float("inf")),
        ("tick_interval", 11),
    ],
)
def test_bad_fields_are_usage_errors_naming_the_field(field: str, bad: object) -> None:
    with pytest.raises(UsageError, match=field):
        ClusterConfig(**{field: bad})


def test_a_config_stored_before_the_field_existed_gets_the_default() -> None:
    old = ClusterConfig().as_dict()
    del old["compaction_keep"]
    assert ClusterConfig.from_dict(old).compaction_keep == 5_000
    assert ClusterConfig.from_dict(ClusterConfig(compaction_keep=7).as_dict()).compaction_keep == 7
