"""Aliases: one version per alias per model, every move kept with who and when, rollback as an
undo, and the aliases as they stood at any moment."""

from __future__ import annotations

import getpass
import time

import pytest

from studio.core.versions.registry import VersionError, parse_time


@pytest.fixture
def churn(registry, make_model):
    """churn:1, churn:2 and churn:3."""
    for offset in (1.0, 2.0, 3.0):
        registry.record(make_model(offset, "churn"))
    return registry


def moves(registry, alias="champion"):
    return [(m.from_version, m.to_version, m.action)
            for m in registry.alias_history("churn", alias)]


def test_an_alias_names_one_version_and_each_move_is_kept(churn):
    first = churn.set_alias("churn", "champion", 1)
    churn.set_alias("churn", "champion", 2)
    churn.set_alias("churn", "challenger", 3)
    assert churn.by_alias("churn", "champion").reference == "churn:2"
    assert [(v.reference, v.aliases) for v in churn.versions("churn")] == [
        ("churn:3", ("challenger",)), ("churn:2", ("champion",)), ("churn:1", ())]
    assert moves(churn) == [(1, 2, "set"), (None, 1, "set")]
    assert first.user == getpass.getuser() and first.at > 0
    assert first.text() == "churn@champion moved: - → 1"


def test_pointing_an_alias_where_it_points_already_moves_nothing(churn):
    churn.set_alias("churn", "champion", 1)
    churn.set_alias("churn", "champion", 1)
    assert moves(churn) == [(None, 1, "set")]


def test_an_alias_cannot_name_a_version_that_does_not_exist_or_be_misspelled(churn):
    with pytest.raises(VersionError, match="no version 9"):
        churn.set_alias("churn", "champion", 9)
    with pytest.raises(VersionError, match="cannot be an alias"):
        churn.set_alias("churn", "3rd place", 1)
    assert churn.alias_history("churn") == []


def test_rollback_undoes_moves_one_at_a_time(churn):
    for version in (1, 2, 3):
        churn.set_alias("churn", "champion", version)
    back = churn.rollback("churn", "champion")
    assert (back.from_version, back.to_version, back.action) == (3, 2, "rollback")
    assert churn.by_alias("churn", "champion").version == 2
    assert churn.rollback("churn", "champion").to_version == 1
    with pytest.raises(VersionError) as caught:
        churn.rollback("churn", "champion")
    assert "first set to version 1" in caught.value.message
    churn.set_alias("churn", "champion", 3)
    assert churn.rollback("churn", "champion").to_version == 1  # undoes the newest move


def test_a_removed_alias_comes_back_with_a_rollback(churn):
    churn.set_alias("churn", "champion", 2)
    churn.remove_alias("churn", "champion")
    with pytest.raises(VersionError, match="no alias 'champion'"):
        churn.by_alias("churn", "champion")
    assert churn.rollback("churn", "champion").to_version == 2


def test_rollback_of_an_alias_never_moved_says_how_to_set_it(churn):
    with pytest.raises(VersionError) as caught:
        churn.rollback("churn", "champion")
    assert "never been moved" in caught.value.message
    assert "slipway alias churn@champion VERSION" in caught.value.hint


def test_rollback_to_a_deleted_version_is_refused(churn):
    churn.set_alias("churn", "champion", 1)
    churn.set_alias("churn", "champion", 2)
    churn.delete(churn.get("churn", 1))
    with pytest.raises(VersionError, match="which was deleted"):
        churn.rollback("churn", "champion")
    assert churn.by_alias("churn", "champion").version == 2


def test_the_aliases_as_they_stood_at_a_moment(churn, make_model):
    churn.set_alias("churn", "champion", 1)
    time.sleep(0.01)  # distinct clock readings for the moments between moves
    tuesday = time.time()
    time.sleep(0.01)
    churn.set_alias("churn", "champion", 2)
    churn.record(make_model(4.0, "churn"))
    churn.set_alias("churn", "challenger", 4)

    then = churn.versions("churn", at=tuesday)
    assert [(v.reference, v.aliases) for v in then] == [
        ("churn:3", ()), ("churn:2", ()), ("churn:1", ("champion",))]
    assert [v.reference for v in churn.versions("churn", alias="champion", at=tuesday)] == [
        "churn:1"]
    assert [v.reference for v in churn.versions("churn", alias="champion")] == ["churn:2"]


def test_times_are_read_as_local_time_and_bad_ones_are_explained():
    assert parse_time("2026-11-24T10:00") == time.mktime((2026, 11, 24, 10, 0, 0, 0, 0, -1))
    assert parse_time("2026-11-24") == parse_time("2026-11-24T00:00:00")
    assert parse_time("2026-11-24T10:00+00:00") == 1795514400.0
    with pytest.raises(VersionError) as caught:
        parse_time("last tuesday")
    assert "2026-11-24T10:00" in caught.value.hint
