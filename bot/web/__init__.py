"""The people's screens: console, dashboard and chat page (templates, static files, helpers)."""
