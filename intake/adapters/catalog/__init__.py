"""The catalog: every arrival and its fate, in SQLite at ``state/catalog.db``.

Entry point: ``catalog.Catalog``, one object that owns the connection pool and hands it (in a
``store.Store``, with the steps every recorded transition shares) to its parts:
``arrivals`` (the cataloguer's writes), ``fates`` (the sweeper's), ``destruction_certificates``
(signed destruction certificates; ``certificates(...)`` lists them), ``queries`` (reads shared
by all). ``model`` holds the schema, its migrations and the row types.
"""
