"""Tests for pkiforge.auth and pkiforge.client.auth."""
