"""Care fixtures: the escalation app (a second team and an admin, no background scan)."""

from tests.escalation.conftest import app

__all__ = ["app"]
