"""template.yaml's monitoring: an Errors alarm for every function, the dashboard, the alarm topic."""

from __future__ import annotations

import json
import re
from typing import Any

from lead_caller.intake import rejection_kind
from local.resources import load_template

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
FUNCTIONS = sorted(name for name, spec in RESOURCES.items() if spec["Type"] == "AWS::Serverless::Function")
ALARMS = {name: spec["Properties"] for name, spec in RESOURCES.items() if spec["Type"] == "AWS::CloudWatch::Alarm"}


def _errors_alarm_of(function: str) -> Any:
    for name, alarm in ALARMS.items():
        dimensions = alarm.get("Dimensions") or []
        if alarm.get("MetricName") == "Errors" and {"Name": "FunctionName", "Value": {"Ref": function}} in dimensions:
            return name
    return None


def test_every_function_has_an_errors_alarm():
    missing = [function for function in FUNCTIONS if _errors_alarm_of(function) is None]

    assert not missing, f"add an AWS/Lambda Errors alarm (like WebhookFunctionErrorsAlarm) for: {', '.join(missing)}"


def test_every_alarm_notifies_the_topic_or_the_email_topic():
    for name, alarm in ALARMS.items():
        actions = alarm.get("AlarmActions")
        assert actions == {
            "If": [
                "HasAlarmTopic",
                [{"Ref": "AlarmTopicArn"}],
                {"If": ["HasAlarmEmail", [{"Ref": "AlarmEmailTopic"}], {"Ref": "AWS::NoValue"}]},
            ]
        }, name


def test_the_alarms_the_operators_need_exist():
    wanted = {
        "UnpodFailureRateAlarm": "UnpodFailures",
        "WebhookServerErrorsAlarm": "5xx",
        "LeadsQueueAgeAlarm": "ApproximateAgeOfOldestMessage",
        "DeadLetterQueueAlarm": "ApproximateNumberOfMessagesVisible",
        "EventsDeadLetterQueueAlarm": "ApproximateNumberOfMessagesVisible",
    }
    for name, metric in wanted.items():
        assert metric in json.dumps(ALARMS[name]), name
    assert RESOURCES["AlarmEmailTopic"]["Condition"] == "HasAlarmEmail"


def test_the_dashboard_is_valid_json_and_shows_every_function_and_queue():
    body = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Sub"]
    references = set(re.findall(r"\$\{([^}]+)\}", body))
    widgets = json.loads(re.sub(r"\$\{([^}]+)\}", "x", body))["widgets"]

    titles = [widget["properties"]["title"] for widget in widgets]
    assert len(titles) >= 8
    for function in FUNCTIONS:
        assert function in references, f"add {function} to the dashboard's Function errors widget"
    for queue in ("LeadsQueue.QueueName", "LeadsDeadLetterQueue.QueueName", "EventsDeadLetterQueue.QueueName"):
        assert queue in references
    assert "HttpApi" in references
    for metric in ("LeadsReceived", "LeadsAccepted", "CallsRequested", "LeadsRejected NOT", "UnpodFailures NOT"):
        assert metric in body
    assert '"p99"' in body


def test_rejection_reasons_become_metric_name_safe_kinds():
    assert rejection_kind("contact_number: missing") == "contact_number"
    assert rejection_kind("consent: the lead opted out") == "consent"
    assert rejection_kind("") == "other"
    assert rejection_kind("weird reason/with spaces") == "weird_reason_with_spaces"
