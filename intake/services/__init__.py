"""Services: what intake does, independent of any protocol.

Modules: ``files`` (the one authorization + storage layer both front-ends use),
``instance`` (finding, creating and opening an instance), ``retention`` (which policy
governs a file), ``status_files``, ``anchors`` (the signed head time-stamped and mailed).
Packages: ``access`` (who may connect and log in), ``cataloguer`` (arrivals -> catalog),
``sweeper`` (plan -> destroy, forward), ``documents`` (receipts, certificates, the
connection card), ``reports`` (the auditor's report), ``alerts``, ``health`` (``intake
status`` and the metrics gauges), ``metrics``.
"""
