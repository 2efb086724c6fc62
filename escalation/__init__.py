"""corecircle escalation package."""
