"""Outbound delivery: senders behind one port, token cache, quotas and the outbox dispatcher."""
