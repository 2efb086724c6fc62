"""corecircle bot package."""
