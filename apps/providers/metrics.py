"""Prometheus counters for ingress and sends (exported at /metrics by django-prometheus)."""

from prometheus_client import Counter

webhook_rejected = Counter(
    "switchboard_webhook_rejected_total",
    "Provider webhooks refused with 403 (bad, missing, stale or replayed signature).",
    ["provider", "reason"],
)
webhook_messages = Counter(
    "switchboard_webhook_messages_total",
    "Inbound messages by outcome (stored or duplicate).",
    ["provider", "outcome"],
)
sends = Counter(
    "switchboard_sends_total",
    "Provider send attempts by outcome (sent, retry, failed, rate_limited).",
    ["provider", "outcome"],
)
