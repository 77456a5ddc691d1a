"""The server that hosts the API: TLS listener, worker processes, the server's own certificate.

It imports api/ only through the app the composition root (wiring.py) builds; api/ never
imports it. `tls.py` hands the verified client certificate to the app (the ASGI TLS
extension); `run.serve` serves in one process or in uvicorn's worker processes.
"""
