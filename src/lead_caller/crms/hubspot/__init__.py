"""Everything about HubSpot in one place.

- `webhook.py`: the source of `POST /webhooks/hubspot` (Webhooks API v3/v1 signatures, workflow
  webhooks v2/v3/API key), its field mapping and the thin events it queues.
- `api.py`: the CRM API client: batch read of thin events' contacts (enrichment, dispatch path)
  and the call note + optional contact property (write-back).
- Not shipped: the API stand-in `local/hubspot_api.py`; tests `tests/unit/test_hubspot_*.py`.
"""
