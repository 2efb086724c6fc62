"""HTTP routes, one module per area; FastAPI stays inside bot/."""
