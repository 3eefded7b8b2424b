"""`lead-caller replay`: send what the dead-letter queues hold back through the stack.

Leads DLQ: each message is a lead; it goes back to the leads queue unless its lead was called
meanwhile (then it is only removed). Safe to run twice: a message is sent again before it is
deleted from the DLQ, and the dispatcher's claim calls a lead at most once within the dedupe
window. Events DLQ: each EventBridge event is handed to the event function again (async
invoke). `--dry-run` shows what would be re-sent and why each failed, and changes nothing.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ops.common import plain, table
from ops.target import Target, add_target_arguments, resolve_target

#: a lead in one of these statuses was (or is being) called: its DLQ message is only removed
CALLED = (
    "call_requested",
    "in_progress",
    "completed",
    "no_answer",
    "busy",
    "voicemail",
    "call_failed",
    "recall_pending",
)


def register(subparsers: Any) -> None:
    """Add the `replay` command."""
    parser = subparsers.add_parser("replay", help="re-send the dead-letter queues (--dry-run to look first)")
    parser.add_argument("--dry-run", action="store_true", help="show what would be re-sent and why it failed")
    parser.add_argument("--queue", choices=("leads", "events", "both"), default="both")
    parser.add_argument("--max", type=int, default=1000, help="at most this many messages per queue")
    add_target_arguments(parser)
    parser.set_defaults(func=run)


def _receive(target: Target, queue_url: str, limit: int, hold: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while len(messages) < limit:
        got = target.sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, limit - len(messages)),
            VisibilityTimeout=hold,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            break
        messages.extend(got)
    return messages


def _release(target: Target, queue_url: str, messages: list[dict[str, Any]]) -> None:
    for message in messages:
        target.sqs.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )


def lead_plan(target: Target, message: dict[str, Any]) -> dict[str, Any]:
    """What to do with one leads-DLQ message, and why it failed."""
    try:
        body = json.loads(message["Body"])
        lead_id = f"{body['source']}#{body['record_id']}"
    except (ValueError, KeyError, TypeError):
        return {"lead": "?", "action": "keep", "why": "not a lead message (left in the DLQ)", "body": None}
    item = plain(
        target.dynamodb.get_item(TableName=target.table_name, Key={"pk": {"S": lead_id}}, ConsistentRead=True).get(
            "Item"
        )
    )
    status = item.get("status", "no record")
    why = item.get("reason") or item.get("last_error") or item.get("error_kind") or f"status {status}"
    receives = message.get("Attributes", {}).get("ApproximateReceiveCount", "?")
    action = "remove (already called)" if status in CALLED else "re-send"
    return {"lead": lead_id, "status": status, "receives": receives, "why": str(why), "action": action, "body": message}


def event_plan(message: dict[str, Any]) -> dict[str, Any]:
    """What to do with one events-DLQ message (EventBridge puts the error in message attributes)."""
    attributes = message.get("MessageAttributes", {})
    why = " ".join(
        str(attributes[key].get("StringValue", "")) for key in ("ERROR_CODE", "ERROR_MESSAGE") if key in attributes
    )
    try:
        event = json.loads(message["Body"])
        name = f"{event.get('source')} / {event.get('detail-type')} {event.get('id', '')}".strip()
    except ValueError:
        name = "?"
    return {"lead": name, "why": why or "unknown (no error attributes)", "action": "re-invoke", "body": message}


def run(args: argparse.Namespace) -> int:
    """Plan, print, and (unless --dry-run) re-send."""
    target = resolve_target(args)
    hold = 30 if not args.dry_run else 5
    problems = 0
    if args.queue in ("leads", "both"):
        messages = _receive(target, target.dlq_url, args.max, hold)
        plans = [lead_plan(target, message) for message in messages]
        print(f"leads DLQ: {len(plans)} message(s)" + (" (dry run: nothing re-sent)" if args.dry_run else ""))
        if plans:
            print("\n".join(table(plans, ("lead", "status", "receives", "action", "why"))))
        if args.dry_run:
            _release(target, target.dlq_url, messages)
        else:
            problems += _replay_leads(target, plans)
    if args.queue in ("events", "both"):
        if not target.events_dlq_url:
            print("events DLQ: none on this stack")
        else:
            messages = _receive(target, target.events_dlq_url, args.max, hold)
            plans = [event_plan(message) for message in messages]
            print(f"events DLQ: {len(plans)} message(s)" + (" (dry run: nothing re-sent)" if args.dry_run else ""))
            if plans:
                print("\n".join(table(plans, ("lead", "action", "why"))))
            if args.dry_run:
                _release(target, target.events_dlq_url, messages)
            else:
                problems += _replay_events(target, plans)
    return 1 if problems else 0


def _replay_leads(target: Target, plans: list[dict[str, Any]]) -> int:
    done = 0
    for plan in plans:
        message = plan["body"]
        if plan["action"] == "keep":
            continue
        if plan["action"] == "re-send":
            target.sqs.send_message(QueueUrl=target.queue_url, MessageBody=message["Body"])
        target.sqs.delete_message(QueueUrl=target.dlq_url, ReceiptHandle=message["ReceiptHandle"])
        done += 1
    print(f"leads DLQ: {done} handled ({sum(1 for p in plans if p['action'] == 're-send')} re-sent)")
    return 0


def _replay_events(target: Target, plans: list[dict[str, Any]]) -> int:
    if target.lambda_client is None or not target.event_function_name:
        print("events DLQ: cannot re-invoke: the stack's EventFunction is unknown (left in the DLQ)")
        return 1
    for plan in plans:
        message = plan["body"]
        target.lambda_client.invoke(
            FunctionName=target.event_function_name, InvocationType="Event", Payload=message["Body"].encode()
        )
        assert target.events_dlq_url is not None
        target.sqs.delete_message(QueueUrl=target.events_dlq_url, ReceiptHandle=message["ReceiptHandle"])
    print(f"events DLQ: {len(plans)} event(s) handed to {target.event_function_name} again")
    return 0
