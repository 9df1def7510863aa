"""Delivering alerts: the on-disk queue, SMTP and the operator's command hook.

Entry points: ``queue.AlertQueue`` (nothing lost to a mail server that is down),
``smtp.send_mail`` (the one seam to ``smtplib``), ``hook.run_hook`` (a program given each alert as
JSON). What to send and when is decided in ``intake.services.alerts``.
"""
