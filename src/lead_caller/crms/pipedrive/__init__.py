"""Everything about Pipedrive in one place.

- `webhook.py`: the source of `POST /webhooks/pipedrive` (webhooks v1/v2, Basic auth), persons
  mapped at intake, leads and deals queued as thin events.
- `api.py`: the API client: persons and organisations for enrichment, notes / done call
  activities for write-back.
- Not shipped: the API stand-in `local/pipedrive_api.py`; tests `tests/unit/test_pipedrive_*.py`.
"""
