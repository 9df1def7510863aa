"""The auditor's report as one self-contained HTML file (French by default, or English).

Rules:
- Self-contained: inline CSS, inline SVG (``charts``), no script, no image, no
  font, no link to load. A Content-Security-Policy (``default-src 'none'``) makes a
  browser refuse anything else, so a slip shows up as a console error.
- Every value that comes from the catalog or the audit log (names, paths, reasons, IPs)
  goes through ``_v``: first the one rule for client-chosen text (``intake.core.visible``:
  control, format and bidi characters become visible escapes, so ``cat`` on the file never
  drives a terminal and U+202E never reorders a name), then ``html.escape``. Only our own
  strings (``_e``) and numbers are markup.
- Operations, events and reasons are shown in the report's language (``text.py``); a
  reason the table does not know is shown as recorded.
- Prints on A4 (``@page``, table headers repeated, rows never split, colours kept).
- Times are Paris times with their offset (``02/12/2026 10:14:03 UTC+01:00``; the audit
  log and JSON stay UTC); the period is written in words. Sizes in units of 1024 with the
  language's words (``Ko``, ``Mo`` in French; ``KiB``, ``MiB`` in English) and decimal mark.
"""

from __future__ import annotations

import datetime as _dt
import zoneinfo
from collections.abc import Callable
from html import escape

from intake.core.visible import visible
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
    """Our own text (labels, numbers): HTML-escaped."""
    return escape("" if value is None else str(value), quote=True)


def _v(value: object) -> str:
    """A value from the catalog or the audit log: visible escapes, then HTML-escaped."""
    return escape(visible("" if value is None else str(value)), quote=True)


try:
    PARIS: _dt.tzinfo = zoneinfo.ZoneInfo("Europe/Paris")
except zoneinfo.ZoneInfoNotFoundError:  # no tz database: UTC, which the offset says
    PARIS = _dt.UTC

FULL_MONTHS = {
    "fr": ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
           "septembre", "octobre", "novembre", "décembre"],
    "en": ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"],
}  # fmt: skip


def _offset(local: _dt.datetime) -> str:
    delta = local.utcoffset() or _dt.timedelta(0)
    minutes = int(delta.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _when(moment: _dt.datetime | None, lang: str = "fr") -> str:
    """``02/12/2026 10:14:03 UTC+01:00`` (French) or ``2026-12-02 10:14:03 UTC+01:00``."""
    if moment is None:
        return "—"
    local = moment.astimezone(PARIS)
    shown = local.strftime("%d/%m/%Y %H:%M:%S" if lang == "fr" else "%Y-%m-%d %H:%M:%S")
    return f"{shown}\u00a0{_offset(local)}"


def _day(moment: _dt.datetime, lang: str, at: str) -> str:
    """``1er novembre 2026 à 00:00 UTC+01:00`` (the time only when not midnight)."""
    local = moment.astimezone(PARIS)
    day = "1er" if lang == "fr" and local.day == 1 else str(local.day)
    month = FULL_MONTHS[lang][local.month - 1]
    words = f"{day} {month} {local.year}" if lang == "fr" else f"{month} {day}, {local.year}"
    if (local.hour, local.minute, local.second) != (0, 0, 0):
        words += f" {at} {local:%H:%M} {_offset(local)}"
    return words


def _size(size: int | None, lang: str) -> str:
    if size is None:
        return "—"
    units = ("o", "Ko", "Mo", "Go", "To") if lang == "fr" else ("B", "KiB", "MiB", "GiB", "TiB")
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

    def when(self, moment: _dt.datetime | None) -> str:
        return _when(moment, self.lang)

    def period(self) -> str:
        """The period in words: a whole UTC month, both ends, one end, or everything."""
        t, since, until = self.t, self.r.window.since, self.r.window.until
        if since is None and until is None:
            return str(t["whole_period"])
        if since is not None and until is not None:
            start = since.astimezone(_dt.UTC)
            if start == start.replace(day=1, hour=0, minute=0, second=0, microsecond=0):
                following = (start + _dt.timedelta(days=32)).replace(day=1)
                if until.astimezone(_dt.UTC) == following:
                    month = f"{FULL_MONTHS[self.lang][start.month - 1]} {start.year}"
                    return str(t["month_period"]).format(month=month)
            return str(t["between"]).format(
                since=_day(since, self.lang, t["at"]), until=_day(until, self.lang, t["at"])
            )
        if since is not None:
            return str(t["since_only"]).format(since=_day(since, self.lang, t["at"]))
        if until is None:
            return str(t["whole_period"])  # (unreachable: handled first)
        return str(t["until_only"]).format(until=_day(until, self.lang, t["at"]))

    def header(self, title: str) -> None:
        t, r = self.t, self.r
        self.out.append(
            f"<header><h1>{_e(title)}</h1>"
            f'<p class="meta">{_e(t["period"])} <b>{_e(self.period())}</b></p>'
            f'<p class="meta">{_e(t["instance"])} <b>{_v(r.instance)}</b> · {_e(t["generated"])}'
            f" <b>{_e(self.when(r.generated_at))}</b> · {_e(t['tz_note'])}</p>"
            f'<p class="meta">{_e(t["key"])} <b class="hash">{_v(r.key_id)}</b></p></header>'
        )

    def backups(self, a: AccountReport) -> None:
        t = self.t
        self.out.append(f"<h2>{_e(t['h_backups'])}</h2>")
        rows = [
            [
                _e(e.id),
                _v(e.path),
                _e(_size(e.size, self.lang)),
                f'<span class="hash">{_v(e.sha256)}</span>',
                _e(self.when(e.received_at)),
                _v(e.protocol) if e.protocol else _e(t["found"]),
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
            "when": (t["when"], "when", lambda f: _e(self.when(f.at))),
            "who": (t["who"], "", lambda f: _v(f.account)),
            "tried": (t["name_tried"], "", lambda f: _v(f.account) if f.account else "—"),
            "what": (t["path"], "", lambda f: _v(f.path)),
            "event": (t["event"], "", lambda f: self.label("events", f.event)),
            "operation": (t["operation"], "", self.operation),
            "reason": (t["reason"], "", lambda f: self.reason(f.reason)),
            "protocol": (t["protocol"], "", lambda f: _v(f.protocol)),
            "ip": (t["ip"], "", lambda f: _v(f.ip)),
            "size": (t["size"], "num", lambda f: _e(_size(f.size, self.lang))),
            "detail": (t["detail"], "", lambda f: self.label("operations", f.detail)),
            "until": (t["until"], "when", self.until),
        }
        heads = [(getters[c][0], getters[c][1]) for c in columns]
        rows = [[getters[c][2](f) for c in columns] for f in facts]
        self.table(heads, rows, empty)

    def label(self, table: str, value: str) -> str:
        """Our word for a recorded name (an event, an operation), or the name as recorded."""
        known = self.t[table].get(value)
        return _e(known) if known else _v(value)

    def operation(self, f: Fact) -> str:
        shown = self.label("operations", f.operation or f.detail)
        if f.command:  # the command a refused exec asked for
            shown += f" <code>{_v(f.command)}</code>"
        return shown

    def reason(self, reason: str) -> str:
        """The reason in the report's language when the table knows it (by its start)."""
        for start, words in self.t["reasons"]:
            if reason.startswith(start):
                return _e(words)
        return _v(reason)

    def until(self, f: Fact) -> str:
        try:
            return _e(self.when(_dt.datetime.fromisoformat(f.until.replace("Z", "+00:00"))))
        except ValueError:
            return _v(f.until)

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
                    _v(d.path),
                    _e(_size(d.size, self.lang)),
                    f'<span class="hash">{_v(d.sha256)}</span>',
                    _e(self.when(d.destroyed_at)),
                    _v(d.policy),
                    integrity,
                    f'<span class="hash">{_v(d.certificate or t["no_certificate"])}</span>',
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
                (str(len(a.probes)), t["c_probes"]),
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
        self.facts(
            t["h_probes"],
            a.probes,
            ["when", "operation", "what", "protocol", "ip"],
            t["none_probes"],
        )
        self.out.append(f'<p class="meta">{_e(t["probes_hint"])}</p>')
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
                (str(sum(len(a.probes) for a in accounts)), t["c_probes"]),
                (str(sum(len(a.logins) for a in accounts)), t["c_logins"]),
                (str(len(self.r.outsiders)), t["c_outsiders"]),
            ]
        )
        self.charts(accounts)
        self.out.append(f"<h2>{_e(t['h_members'])}</h2>")
        rows = [
            [
                _v(a.account),
                _e(len(a.backups)),
                _e(_size(a.received_bytes, self.lang)),
                _e(self.when(max((e.received_at for e in a.backups), default=None))),
                _e(len(a.technician_reads)),
                _e(len(a.forwards)),
                _e(len(a.destructions)),
                (f'<span class="bad">{len(a.refusals)}</span>' if a.refusals else "0"),
                _e(len(a.probes)),
                _e(len(a.logins)),
            ]
            for a in accounts
        ]
        heads = [
            (t["member"], "name"), (t["c_backups"], "num"), (t["c_volume"], "num"),
            (t["last_arrival"], "when"), (t["c_reads"], "num"), (t["c_forwarded"], "num"),
            (t["c_destroyed"], "num"), (t["c_refused"], "num"), (t["c_probes"], "num"),
            (t["c_logins"], "num"),
        ]  # fmt: skip
        self.table(heads, rows, t["none_members"])
        self.out.append(f'<p class="meta">{_e(t["all_hint"])}</p>')
        self.facts(
            t["h_outsiders"],
            self.r.outsiders,
            ["when", "event", "tried", "operation", "reason", "protocol", "ip", "until"],
            t["none_outsiders"],
        )


def render(report: Report, lang: str = "fr") -> str:
    """The whole HTML document."""
    page = _Page(report, lang)
    t = page.t
    if report.scope == "all":
        title = t["title_all"]
    else:
        title = t["title_account"].format(account=visible(report.accounts[0].account))
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
