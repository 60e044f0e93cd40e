"""The HTTP edge shared by the api and ws roles (starlette apps served by hypercorn)."""
