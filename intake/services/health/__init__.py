"""Is the instance healthy: ``intake status`` and the gauges ``serve`` exports.

Entry points: ``status.check`` (what ``intake status`` prints), ``gauges.register`` (the
metrics read from the same places, so the two never disagree).
"""
