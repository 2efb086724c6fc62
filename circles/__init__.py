"""corecircle circles package."""
