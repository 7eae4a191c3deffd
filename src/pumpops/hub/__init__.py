"""The control-plane process: HTTP API, dashboard and background services (FastAPI, uvicorn).

Arrives with the packaging issue (serving the TUF repository). May import every hub-side part.
"""
