"""`dagctl serve`: the web dashboard, its JSON API under /api/v1, /healthz and /metrics.

The only package that imports the web framework (Starlette, uvicorn). It reads through
`dagctl.actions` (and the store it is handed), never its own SQL."""
