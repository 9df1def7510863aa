"""The sweeper: plan with the retention policies, then destroy and forward (borg's prune).

Entry point: ``sweep.Sweeper`` (``run`` plans with ``now`` passed in, then applies or
prints). Its parts: ``destroy`` (write-ahead destruction, one certificate each),
``forward`` (to the vendor over SFTP), ``retry`` (when a failed forward is tried again),
``report`` (what a sweep says per file), ``lock`` (one sweep at a time), ``scheduler``
(``serve``'s in-process timer).
"""
