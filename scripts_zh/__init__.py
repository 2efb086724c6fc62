"""corecircle scripts_zh package."""
