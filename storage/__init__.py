"""corecircle storage package."""
