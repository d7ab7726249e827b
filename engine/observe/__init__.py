"""Observability: metrics, HTTP endpoints, logs, data quality, alerts."""
