"""Everything about Zoho CRM in one place.

- `webhook.py`: the source of `POST /webhooks/zoho` (workflow webhooks, Notification API callbacks).
- `api.py`: the OAuth refresh-token client (data-centre aware): records for enrichment, notes
  for write-back, the notification channel.
- `watch.py`: renewing the notification channel (the daily ZohoWatchFunction).
- Not shipped: the API stand-in `local/zoho_api.py`; the setup guide `docs/zoho.md`;
  tests `tests/unit/test_zoho_*.py`.
"""
