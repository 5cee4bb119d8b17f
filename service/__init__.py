"""The OMS as a service: the HTTP API (/v1), the clerk's console (/), the Temporal codec
endpoints (/codec) and Prometheus metrics (/metrics), in one stateless ASGI app
(`service.app.create_app`), served by uvicorn (`oms serve`, `worker.py --dev`, `demo`)."""
