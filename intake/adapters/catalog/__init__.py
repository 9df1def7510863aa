"""The catalog: every arrival and its fate, in SQLite at ``state/catalog.db``.

Entry point: ``catalog.Catalog``, one object that owns the connection pool and hands it to
its collaborators: ``arrivals`` (the cataloguer's writes), ``fates`` (the sweeper's),
``certificates`` (destruction certificates), ``queries`` (reads shared by all).
``model`` holds the schema, its migrations and the row types.
"""
