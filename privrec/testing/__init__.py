"""privrec.testing: harnesses for tests, demos and benchmarks, kept out of the product packages.

* :mod:`.servers` — ``privrec serve`` in a subprocess (:class:`~.servers.ServerProcess`) or uvicorn in a
  thread (:func:`~.servers.serve_in_thread`) on 127.0.0.1.
* :mod:`.tls` — a throwaway CA and a server certificate for 127.0.0.1 (TLS tests).
* :mod:`.devices` — ``privrec device simulate``: N real devices, each holding one user's history, taking
  part in rounds of a running server over HTTP, with dropouts injected at every stage.

Import the submodules directly; this package imports nothing heavy on its own.
"""
