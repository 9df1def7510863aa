"""The pure core: rules and values, no I/O (stdlib only; ``config.load`` reads one file).

Modules: ``errors`` (the error tree and exit codes), ``clock`` (the one place that reads
the time; everything else is given "now"), ``model`` (accounts, roles, the arrival state
machine), ``paths`` (name checks, jail containment), ``authz`` (who may do what where),
``config`` + ``config_values``, ``durations`` and ``policy`` (retention plans, pure),
``alerts`` (what an incident says, grouped into one e-mail), ``messages`` (what a
member reads when refused, both protocols), ``extent`` (the written ranges of an
upload), ``visible`` (client-chosen names shown with visible escapes).
"""
