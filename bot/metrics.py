"""Prometheus metrics, in one registry of our own so tests can start many apps in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

CALLBACK_SECONDS = Histogram(
    "safetybot_callback_seconds", "Time from a platform callback's arrival to our answer",
    ["platform"], registry=REGISTRY,
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CALLBACKS = Counter(
    "safetybot_callbacks_total", "Platform callbacks by result", ["platform", "result"],
    registry=REGISTRY,
)
INBOX_LAG = Gauge(
    "safetybot_inbox_lag_seconds", "Age of the oldest pending inbox event", registry=REGISTRY
)
INBOX_PENDING = Gauge("safetybot_inbox_pending", "Pending inbox events", registry=REGISTRY)
INBOX_HANDLED = Counter(
    "safetybot_inbox_handled_total", "Inbox events by outcome", ["outcome"], registry=REGISTRY
)
OUTBOX_PENDING = Gauge(
    "safetybot_outbox_pending", "Outbox messages not yet settled", registry=REGISTRY
)
OUTBOX_FAILED = Gauge(
    "safetybot_outbox_failed_deliveries", "Deliveries that failed for good", registry=REGISTRY
)
OUTBOX_SENT = Counter(
    "safetybot_outbox_deliveries_total", "Deliveries by verdict", ["platform", "verdict"],
    registry=REGISTRY,
)
API_ERRORS = Counter(
    "safetybot_api_errors_total", "Platform API errors by errcode",
    ["platform", "path", "errcode"],
    registry=REGISTRY,
)
TOKEN_REFRESHES = Counter(
    "safetybot_token_refreshes_total", "Access token fetches", ["platform"], registry=REGISTRY
)
STREAM_CONNECTS = Counter(
    "safetybot_stream_connects_total", "Connections opened to a platform's stream",
    ["platform"], registry=REGISTRY,
)
ALARMS_LATE = Gauge(
    "safetybot_alarms_late", "Reminders and escalations overdue beyond the grace period",
    registry=REGISTRY,
)
LOOP_ERRORS = Counter(
    "safetybot_loop_errors_total",
    "Rounds of a background loop that failed on its environment (database, disk, network)",
    ["loop"], registry=REGISTRY,
)
LOOP_RESTARTS = Counter(
    "safetybot_loop_restarts_total", "Background loops that resumed after failing",
    ["loop"], registry=REGISTRY,
)
LOOP_IDLE = Gauge(
    "safetybot_loop_seconds_since_success",
    "Seconds since a background loop's last successful round (claim, tick, connection)",
    ["loop"], registry=REGISTRY,
)
