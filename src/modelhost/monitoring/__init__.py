"""Monitoring: Prometheus metrics, prediction logging and drift detection."""
