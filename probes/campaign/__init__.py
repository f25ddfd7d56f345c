"""Campaigns: plan, cost, submit and track every run of a table (`probes plan`, `probes status`)."""
