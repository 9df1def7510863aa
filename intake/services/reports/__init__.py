"""The auditor's report: one self-contained HTML file (French by default, or English).

Entry points: ``publish.build`` and ``publish.write_monthly`` (on demand, and each month
by the sweep). ``data`` gathers (no HTML), ``html`` renders, ``text`` holds the words,
``charts`` the inline SVG bars.
"""
