"""Delivery of pkiforge's events to the outside world: webhooks (Standard Webhooks signing)."""
