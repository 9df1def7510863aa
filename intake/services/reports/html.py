"""The auditor's report as one self-contained HTML file (French by default, or English).

Rules:
- Self-contained: inline CSS, inline SVG (``charts``), no script, no image, no
  font, no link to load. A Content-Security-Policy (``default-src 'none'``) makes a
  browser refuse anything else, so a slip shows up as a console error.
- Every value that comes from the catalog or the audit log (names, paths, reasons, IPs)
  goes through ``html.escape`` (``_e``); only our own strings and numbers are markup.
- Prints on A4 (``@page``, table headers repeated, rows never split, colours kept).
- Times are UTC, written ``2026-12-02 09:14:03 UTC`` in both languages; sizes in binary
  units with the language's decimal mark.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from html import escape

from intake.services.reports.charts import Series, bar_chart
from intake.services.reports.data import AccountReport, Destruction, Fact, Report
from intake.services.reports.text import MONTHS, TEXT

MAX_ROWS = 2000  # per table; the rest is counted, not shown
CSS = """
:root{--ink:#1d2430;--muted:#5b6573;--line:#d8dde4;--band:#f3f5f8;--accent:#1f5fa8}
*{box-sizing:border-box}
body{font:13px/1.45 "DejaVu Sans",Arial,Helvetica,sans-serif;color:var(--ink);margin:0;
background:#fff}
main{max-width:1000px;margin:0 auto;padding:28px 32px}
header{border-bottom:3px solid var(--accent);padding-bottom:10px;margin-bottom:18px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:16px;margin:26px 0 8px;color:var(--accent);border-bottom:1px solid var(--line);
padding-bottom:3px}
.meta{color:var(--muted);margin:0}
.meta b{color:var(--ink);font-weight:600}
.cards{display:grid;grid-template-columns:repeat(4,1fr);gap:8px;margin:14px 0}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 10px;background:var(--band)}
.card .n{font-size:20px;font-weight:700}
.card .l{color:var(--muted);font-size:11px}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:12px}
figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:6px}
figcaption{font-weight:600;font-size:12px;margin:0 0 2px 4px}
svg.chart{width:100%;height:auto;display:block}
svg .grid{stroke:#e6e9ee;stroke-width:1}
svg .axis{stroke:#8a94a3;stroke-width:1}
svg .tick{font-size:13px;fill:#4a5361}
svg .legend{font-size:15px;fill:#2a313c}
table{width:100%;border-collapse:collapse;margin:4px 0 6px;font-size:11.5px}
th{text-align:left;background:var(--band);border-bottom:2px solid var(--line);padding:4px 6px;
font-weight:600}
td{border-bottom:1px solid var(--line);padding:3px 6px;vertical-align:top}
th.num{text-align:right}
td.num{text-align:right;white-space:nowrap}
td.name{white-space:nowrap;font-weight:600}
td.when{white-space:nowrap}
.hash{font-family:"DejaVu Sans Mono",monospace;font-size:10.5px;word-break:break-all}
.empty{color:var(--muted);font-style:italic}
.more{color:var(--muted)}
.bad{color:#a11d1d;font-weight:600}
.ok{color:#1b6e3a}
.hint{background:var(--band);border-left:3px solid var(--accent);padding:6px 10px;
margin:6px 0}
.hint code{font-family:"DejaVu Sans Mono",monospace;font-size:11px}
footer{margin-top:28px;color:var(--muted);font-size:11px;border-top:1px solid var(--line);
padding-top:6px}
@page{size:A4;margin:14mm 12mm}
@media print{
main{max-width:none;padding:0}
body{font-size:10.5px;-webkit-print-color-adjust:exact;print-color-adjust:exact}
.charts{grid-template-columns:1fr 1fr}
h2{break-after:avoid}
tr,figure,.card{break-inside:avoid}
thead{display:table-header-group}
}
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'"


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _when(moment: _dt.datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(size: int | None, lang: str) -> str:
    if size is None:
        return "—"
    units = ("o", "Kio", "Mio", "Gio", "Tio") if lang == "fr" else ("B", "KiB", "MiB", "GiB", "TiB")
    if size < 1024:
        return f"{size} {units[0]}"
    value, unit = float(size), 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    text = f"{value:.1f}"
    return (text.replace(".", ",") if lang == "fr" else text) + f" {units[unit]}"


class _Page:
    def __init__(self, report: Report, lang: str) -> None:
        self.r = report
        self.lang = lang
        self.t = TEXT[lang]
        self.out: list[str] = []

    def month_label(self, month: str) -> str:
        year, number = month.split("-")
        return f"{MONTHS[self.lang][int(number) - 1]} {year}"

    # -- pieces ------------------------------------------------------------------

    def table(self, heads: list[tuple[str, str]], rows: list[list[str]], empty: str) -> None:
        """``heads``: (text, css class); ``rows``: cells already escaped."""
        if not rows:
            self.out.append(f'<p class="empty">{_e(empty)}</p>')
            return
        self.out.append("<table><thead><tr>")
        self.out += [f'<th class="{c}">{_e(h)}</th>' for h, c in heads]
        self.out.append("</tr></thead><tbody>")
        for row in rows[:MAX_ROWS]:
            cells = "".join(
                f'<td class="{c}">{cell}</td>' for cell, (_, c) in zip(row, heads, strict=True)
            )
            self.out.append(f"<tr>{cells}</tr>")
        self.out.append("</tbody></table>")
        if len(rows) > MAX_ROWS:
            more = self.t["more"].format(n=len(rows) - MAX_ROWS)
            self.out.append(f'<p class="more">{_e(more)}</p>')

    def cards(self, items: list[tuple[str, str]]) -> None:
        self.out.append('<div class="cards">')
        for number, label in items:
            self.out.append(
                f'<div class="card"><div class="n">{_e(number)}</div>'
                f'<div class="l">{_e(label)}</div></div>'
            )
        self.out.append("</div>")

    def charts(self, accounts: list[AccountReport]) -> None:
        t = self.t
        months = self.r.months()
        index = {m: i for i, m in enumerate(months)}

        def per_month(moments: list[_dt.datetime]) -> list[int]:
            counts = [0] * len(months)
            for moment in moments:
                i = index.get(moment.astimezone(_dt.UTC).strftime("%Y-%m"))
                if i is not None:
                    counts[i] += 1
            return counts

        labels = [self.month_label(m) for m in months]
        arrivals = per_month([e.received_at for a in accounts for e in a.backups])
        destroyed = per_month([d.destroyed_at for a in accounts for d in a.destructions])
        timeline = bar_chart(
            t["chart_timeline"],
            labels,
            [
                Series(t["arrivals"], "#2f7d4f", arrivals),
                Series(t["destroyed"], "#b23b3b", destroyed),
            ],
            stacked=False,
        )
        accesses = bar_chart(
            t["chart_access"],
            labels,
            [
                Series(
                    t["logins"], "#1f5fa8", per_month([f.at for a in accounts for f in a.logins])
                ),
                Series(
                    t["tech_reads"],
                    "#d08a1e",
                    per_month([f.at for a in accounts for f in a.technician_reads]),
                ),
                Series(
                    t["refused"], "#b23b3b", per_month([f.at for a in accounts for f in a.refusals])
                ),
            ],
            stacked=True,
        )
        self.out.append(
            f'<div class="charts"><figure><figcaption>{_e(t["chart_timeline"])}</figcaption>'
            f"{timeline}</figure><figure><figcaption>{_e(t['chart_access'])}</figcaption>"
            f"{accesses}</figure></div>"
        )

    # -- sections ------------------------------------------------------------------

    def header(self, title: str) -> None:
        t, r = self.t, self.r
        since = _when(r.window.since) if r.window.since else t["open"]
        until = _when(r.window.until) if r.window.until else t["open"]
        self.out.append(
            f"<header><h1>{_e(title)}</h1>"
            f'<p class="meta">{_e(t["period"])} <b>{_e(since)}</b> → <b>{_e(until)}</b></p>'
            f'<p class="meta">{_e(t["instance"])} <b>{_e(r.instance)}</b> · {_e(t["generated"])}'
            f" <b>{_e(_when(r.generated_at))}</b></p>"
            f'<p class="meta">{_e(t["key"])} <b class="hash">{_e(r.key_id)}</b></p></header>'
        )

    def backups(self, a: AccountReport) -> None:
        t = self.t
        self.out.append(f"<h2>{_e(t['h_backups'])}</h2>")
        rows = [
            [
                _e(e.id),
                _e(e.path),
                _e(_size(e.size, self.lang)),
                f'<span class="hash">{_e(e.sha256)}</span>',
                _e(_when(e.received_at)),
                _e(e.protocol or t["found"]),
                _e(t["states"].get(e.state.value, e.state.value)),
            ]
            for e in a.backups
        ]
        heads = [
            ("#", "num"), (t["path"], ""), (t["size"], "num"), ("SHA-256", ""),
            (t["received"], "when"), (t["protocol"], ""), (t["state"], ""),
        ]  # fmt: skip
        self.table(heads, rows, t["none_backups"])

    def facts(self, title: str, facts: list[Fact], columns: list[str], empty: str) -> None:
        t = self.t
        self.out.append(f"<h2>{_e(title)}</h2>")
        getters: dict[str, tuple[str, str, Callable[[Fact], str]]] = {
            "when": (t["when"], "when", lambda f: _e(_when(f.at))),
            "who": (t["who"], "", lambda f: _e(f.account)),
            "what": (t["path"], "", lambda f: _e(f.path)),
            "event": (t["event"], "", lambda f: _e(t["events"].get(f.event, f.event))),
            "operation": (t["operation"], "", lambda f: _e(f.operation or f.detail)),
            "reason": (t["reason"], "", lambda f: _e(f.reason)),
            "protocol": (t["protocol"], "", lambda f: _e(f.protocol)),
            "ip": (t["ip"], "", lambda f: _e(f.ip)),
            "size": (t["size"], "num", lambda f: _e(_size(f.size, self.lang))),
            "detail": (t["detail"], "", lambda f: _e(f.detail)),
        }
        heads = [(getters[c][0], getters[c][1]) for c in columns]
        rows = [[getters[c][2](f) for c in columns] for f in facts]
        self.table(heads, rows, empty)

    def destructions(self, items: list[Destruction]) -> None:
        t = self.t
        self.out.append(f"<h2>{_e(t['h_destroyed'])}</h2>")
        rows = []
        for d in items:
            integrity = (
                f'<span class="ok">{_e(t["verified"])}</span>'
                if d.integrity == "verified"
                else f'<span class="bad">{_e(t["altered"] if d.integrity else "—")}</span>'
            )
            rows.append(
                [
                    _e(d.entry),
                    _e(d.path),
                    _e(_size(d.size, self.lang)),
                    f'<span class="hash">{_e(d.sha256)}</span>',
                    _e(_when(d.destroyed_at)),
                    _e(d.policy),
                    integrity,
                    f'<span class="hash">{_e(d.certificate or t["no_certificate"])}</span>',
                ]
            )
        heads = [
            (t["certificate_id"], "num"), (t["path"], ""), (t["size"], "num"), ("SHA-256", ""),
            (t["destroyed_at"], "when"), (t["policy"], ""), (t["integrity"], ""),
            (t["certificate"], ""),
        ]  # fmt: skip
        self.table(heads, rows, t["none_destroyed"])
        if items:
            self.out.append(
                f'<div class="hint">{_e(t["verify_hint"])}<br>'
                f"<code>intake audit certificate {items[0].entry} --out cert-{items[0].entry}.json"
                "</code><br><code>intake keys export-audit-public audit.pub</code><br>"
                f"<code>intake audit verify-document cert-{items[0].entry}.json"
                " --public-key audit.pub</code></div>"
            )

    def account(self, a: AccountReport) -> None:
        t = self.t
        self.cards(
            [
                (str(len(a.backups)), t["c_backups"]),
                (_size(a.received_bytes, self.lang), t["c_volume"]),
                (str(len(a.technician_reads)), t["c_reads"]),
                (str(len(a.forwards)), t["c_forwarded"]),
                (str(len(a.destructions)), t["c_destroyed"]),
                (str(len(a.refusals)), t["c_refused"]),
                (str(len(a.logins)), t["c_logins"]),
                (str(len(a.reads) - len(a.technician_reads)), t["c_own_reads"]),
            ]
        )
        self.charts([a])
        self.backups(a)
        self.facts(
            t["h_reads"],
            a.reads,
            ["when", "who", "what", "protocol", "ip", "size"],
            t["none_reads"],
        )
        self.facts(
            t["h_forwarded"],
            a.forwards,
            ["when", "what", "detail", "protocol"],
            t["none_forwarded"],
        )
        self.destructions(a.destructions)
        self.facts(
            t["h_refused"],
            a.refusals,
            ["when", "event", "operation", "what", "reason", "protocol", "ip"],
            t["none_refused"],
        )
        self.facts(t["h_logins"], a.logins, ["when", "protocol", "ip", "detail"], t["none_logins"])

    def summary(self) -> None:
        t = self.t
        accounts = self.r.accounts
        self.cards(
            [
                (str(len(accounts)), t["c_members"]),
                (str(sum(len(a.backups) for a in accounts)), t["c_backups"]),
                (_size(sum(a.received_bytes for a in accounts), self.lang), t["c_volume"]),
                (str(sum(len(a.technician_reads) for a in accounts)), t["c_reads"]),
                (str(sum(len(a.forwards) for a in accounts)), t["c_forwarded"]),
                (str(sum(len(a.destructions) for a in accounts)), t["c_destroyed"]),
                (str(sum(len(a.refusals) for a in accounts)), t["c_refused"]),
                (str(sum(len(a.logins) for a in accounts)), t["c_logins"]),
            ]
        )
        self.charts(accounts)
        self.out.append(f"<h2>{_e(t['h_members'])}</h2>")
        rows = [
            [
                _e(a.account),
                _e(len(a.backups)),
                _e(_size(a.received_bytes, self.lang)),
                _e(_when(max((e.received_at for e in a.backups), default=None))),
                _e(len(a.technician_reads)),
                _e(len(a.forwards)),
                _e(len(a.destructions)),
                (f'<span class="bad">{len(a.refusals)}</span>' if a.refusals else "0"),
                _e(len(a.logins)),
            ]
            for a in accounts
        ]
        heads = [
            (t["member"], "name"), (t["c_backups"], "num"), (t["c_volume"], "num"),
            (t["last_arrival"], "when"), (t["c_reads"], "num"), (t["c_forwarded"], "num"),
            (t["c_destroyed"], "num"), (t["c_refused"], "num"), (t["c_logins"], "num"),
        ]  # fmt: skip
        self.table(heads, rows, t["none_members"])
        self.out.append(f'<p class="meta">{_e(t["all_hint"])}</p>')


def render(report: Report, lang: str = "fr") -> str:
    """The whole HTML document."""
    page = _Page(report, lang)
    t = page.t
    if report.scope == "all":
        title = t["title_all"]
    else:
        title = t["title_account"].format(account=report.accounts[0].account)
    page.header(title)
    if report.scope == "all":
        page.summary()
    else:
        page.account(report.accounts[0])
    body = "".join(page.out)
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}<footer>{_e(t['footer'])}</footer></main></body></html>\n"
    )
