"""Transfers: one landed window into a warehouse table (SQL databases, Snowflake, BigQuery)."""

from airflow_provider_slack_audit.transfers._window import LoadSummary, landed_manifests

__all__ = ["LoadSummary", "landed_manifests"]
