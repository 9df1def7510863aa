"""The SFTP front-end (paramiko, server side): only the SFTP subsystem, nothing else.

Entry point: ``server.SftpService`` (started by the daemon). ``server.IntakeServer`` is one
SSH connection (authentication, channels); ``files`` translates SFTP requests into
``FileSession`` calls, with OpenSSH's bounds; ``pipe`` is the channel's input buffer
(paramiko's moves the whole buffer at every read).
"""
