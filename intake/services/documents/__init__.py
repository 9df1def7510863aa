"""Documents a reader checks or keeps: signed receipts and certificates, the connection card.

Entry points: ``signed`` (what each signed document holds, how it verifies),
``receipts.Receipts`` (a member's read-only ``/.receipts/``), ``card`` (the facts of a
member's connection card; the CLI words them).
"""
