"""Ingestion: find notes, load them, chunk them, and keep the index in sync with disk."""
