"""Everything about Salesforce in one place.

- `webhook.py`: the source of `POST /webhooks/salesforce` (Outbound Messages, SOAP, org allowlist).
- `events.py`: Change Data Capture events through EventBridge (Event Relay and AppFlow envelopes).
- `api.py`: completed call Tasks on the Lead/Contact (write-back, OAuth client credentials).
- Not shipped: the API stand-in `local/salesforce_api.py`; the setup guide `docs/salesforce.md`;
  tests `tests/unit/test_salesforce_*.py`.
"""
