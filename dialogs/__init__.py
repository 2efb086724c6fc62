"""Dialogs: short multi-turn forms as rasa-sdk actions, and the runner that drives them."""
