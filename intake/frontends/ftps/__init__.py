"""The FTPS front-end (pyftpdlib + pyOpenSSL): explicit FTPS, TLS 1.2+, no plaintext login.

Entry point: ``server.FtpsService`` (started by the daemon). ``server.ControlChannel`` is
one control connection, ``tls`` the per-connection TLS and the data connection (session
reuse), ``filesystem`` pyftpdlib's filesystem seen through ``FileSession``, ``replies`` pyftpdlib's
English replies replaced by the message table's.
"""
