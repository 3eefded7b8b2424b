"""`ops.common.phone_hash`: the operator's number finds the lead the functions stored."""

from __future__ import annotations

import pytest

from lead_caller.contacts import normalise_phone
from lead_caller.suppression import phone_hash as stored_hash
from ops.common import phone_hash


@pytest.mark.parametrize(
    ("typed", "region"),
    [
        ("+44 20 7946 0958", "US"),
        ("0044 20 7946 0958", "US"),  # the international prefix 00, as the functions read it
        ("020 7946 0958", "GB"),  # national, in the region given
        ("020 7946 0958", "gb"),
    ],
)
def test_every_way_of_writing_a_number_gives_the_hash_it_is_stored_under(typed: str, region: str) -> None:
    stored = normalise_phone("+442079460958", "US")
    assert stored == "+442079460958"
    assert phone_hash(typed, region) == stored_hash(stored)


@pytest.mark.parametrize("typed", ["not a number", "123", ""])
def test_what_is_not_a_valid_number_has_no_hash(typed: str) -> None:
    assert phone_hash(typed) is None
