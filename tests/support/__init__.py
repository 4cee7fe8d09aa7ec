"""Shared fakes and helpers for both test tiers (no tests here)."""
