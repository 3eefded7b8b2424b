"""A test delivery (`X-Lead-Caller-Test: 1`, what `lead-caller doctor` sends): authenticated, never queued."""

from __future__ import annotations

import json

import boto3

from lead_caller.intake import TEST_DELIVERY_ANSWER
from tests.unit.test_intake import BEARER, MARIA, intake, queued, request, signed  # noqa: F401 - the fixture

TEST = {"x-lead-caller-test": "1"}


def test_an_authenticated_test_delivery_is_answered_without_queueing(intake, settings):  # noqa: F811
    reply = intake.handle(request(MARIA, {**BEARER, **TEST}))

    assert reply.status == 200
    assert json.loads(reply.body) == {"test": True, "source": "generic", "message": TEST_DELIVERY_ANSWER}
    assert queued(settings) == []
    assert boto3.client("dynamodb").scan(TableName=settings.table_name)["Items"] == []


def test_a_signed_test_delivery_is_verified_as_usual(intake, settings):  # noqa: F811
    delivery = signed({"test": True})
    delivery = type(delivery)(**{**delivery.__dict__, "headers": {**delivery.headers, **TEST}})

    assert intake.handle(delivery).status == 200
    assert queued(settings) == []


def test_a_test_delivery_with_wrong_credentials_is_refused(intake, settings):  # noqa: F811
    reply = intake.handle(request(MARIA, {**BEARER, "authorization": "Bearer wrong-token", **TEST}))

    assert reply.status == 401
    assert queued(settings) == []


def test_only_the_value_1_marks_a_test(intake, settings):  # noqa: F811
    reply = intake.handle(request(MARIA, {**BEARER, "x-lead-caller-test": "yes"}))

    assert reply.status == 202
    assert len(queued(settings)) == 1
