"""corecircle dialogs package."""
