"""Alerts: incidents become e-mails (or a command's input), at most one per kind at a time.

Entry points: ``alerter.Alerts`` (an audit observer that raises alerts and queues them),
``alerter.deliver_raised`` (a CLI command's alerts go out at exit), ``loop.AlertsLoop``
(``serve``'s delivery, disk watch and daily digest).
"""
