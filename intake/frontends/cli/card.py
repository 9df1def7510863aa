"""``intake account card NAME [--format text|html] [--lang fr|en]``: a member's connection card.

Rules:
- One page: the card is built once as sections of fields, steps and sentences, then laid out
  as plain text (the default, for a letter or an e-mail) or as one self-contained HTML page
  (no external asset, A4 print styles) from the same sections, so the two never disagree.
- Every value from the configuration or an account is escaped in HTML; fingerprints are
  printed exactly as ``intake keys show`` prints them, and in WinSCP's forms.
- An unknown account is a usage error (exit 2, one line).
"""

from __future__ import annotations

import argparse
import html
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

from intake.core.model import Role
from intake.core.paths import check_account_name
from intake.core.visible import visible
from intake.frontends.cli import common
from intake.frontends.cli.card_texts import LANGS, duration, text
from intake.services.documents.card import CardFacts, gather


@dataclass
class Section:
    title: str
    intro: list[str] = field(default_factory=list)  # sentences before the fields
    fields: list[tuple[str, str]] = field(default_factory=list)  # label, value (verbatim)
    steps: list[str] = field(default_factory=list)
    sentences: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)  # sentences after the steps


def build(facts: CardFacts, lang: str) -> tuple[str, list[str], list[Section]]:
    """The card's title, its header lines and its sections: one card per role."""

    def t(key: str, **fields: object) -> str:
        return text(key, lang, **fields)

    colon = COLON[lang]
    header = [f"{t('for')}{colon}{visible(facts.account)}"]
    if facts.organisation:
        header.insert(0, visible(facts.organisation))
    header.append(f"{t('issued')} {facts.issued:%d/%m/%Y}")
    if not facts.enabled:
        header.append(t("disabled"))
    host = visible(facts.host)
    login = Section(t("s_login"))
    login.fields = [
        (t("host"), host),
        (t("login"), facts.account),
        (t("password"), t("password_apart")),
    ]
    if facts.sftp_port is not None:
        login.fields.append((t("sftp_port"), str(facts.sftp_port)))
    if facts.ftps_port is not None:
        login.fields.append((t("ftps_port"), str(facts.ftps_port)))
    login.sentences = [t("protocols")]
    check = Section(t("s_check"), intro=[t("check_intro")])
    if facts.sftp_port is not None:
        for key in facts.host_keys:
            kind = key.kind.removeprefix("ssh-")
            check.fields.append((t("fp_winscp", kind=kind), key.winscp))
            check.fields.append((t("fp_openssh", kind=kind), key.openssh))
    if facts.ftps_port is not None and facts.tls_lower and facts.tls_upper:
        check.fields.append((t("fp_tls"), facts.tls_lower))
        check.fields.append((t("fp_tls_upper"), facts.tls_upper))
        if facts.tls_sha1:
            check.fields.append((t("fp_tls_sha1"), facts.tls_sha1))
    check.after = [t("fp_one")]
    values: dict[str, object] = {"host": host, "account": facts.account}
    values |= {"sftp_port": facts.sftp_port, "ftps_port": facts.ftps_port}
    values["sha1"] = facts.tls_sha1 or ""
    sections = [login, check]
    # The last step drags a backup to the server: a member's only.
    last = None if facts.role is Role.MEMBER else -1
    if facts.sftp_port is not None:
        winscp = t("winscp_steps", **values).split("\n")[:last]
        filezilla = t("filezilla_steps", **values).split("\n")[:last]
        sections.append(Section(t("s_winscp"), steps=winscp))
        sections.append(Section(t("s_filezilla"), steps=filezilla))
    if facts.ftps_port is not None:
        if facts.sftp_port is None:
            sections.append(Section(t("s_filezilla")))
        sections[-1].after.append(t("filezilla_ftps", **values))
        sections.append(
            Section(
                t("s_trust"),
                intro=[t("trust_intro")],
                sentences=t("trust_steps", **values).split("\n"),
            )
        )
    keep = duration(facts.keep, lang) if facts.keep else None
    if facts.role is Role.TECHNICIAN:
        what = [t("tech_members"), t("tech_outbox")]
        if keep:
            what.append(t("outbox_keep", keep=keep))
        sections.append(Section(t("s_technician"), sentences=[*what, t("tech_traced")]))
    elif facts.role is Role.AUDITOR:
        role = Section(t("s_auditor"), sentences=[t("audit_log"), t("audit_reports")])
        role.after = [t("audit_verify")]
        if facts.audit_key:
            role.fields = [(t("audit_key"), facts.audit_key)]
        sections.append(role)
    else:
        sections.append(
            Section(
                t("s_files"),
                sentences=[
                    t("files_received"),
                    t("files_interrupted"),
                    t("files_write_once"),
                    t("files_keep", keep=keep) if keep else t("files_keep_unknown"),
                    t("files_receipts"),
                    t("files_receipts_open"),
                    t("files_traced"),
                ],
            )
        )
    for n, section in enumerate(sections[2:], 3):  # numbered in order, whatever the role
        section.title = f"{n}. {section.title.split('. ', 1)[-1]}"
    contact = visible(facts.contact) if facts.contact else t("help_none")
    sections.append(
        Section(f"{len(sections) + 1}. {t('s_help').split('. ', 1)[-1]}", sentences=[contact])
    )
    title = {Role.TECHNICIAN: "title_technician", Role.AUDITOR: "title_auditor"}
    return t(title.get(facts.role, "title")), header, sections


WIDTH = 86  # columns of the text card: one A4 page in a monospaced 10 pt font
COLON = {"fr": "\u00a0: ", "en": ": "}  # French typography: a no-break space before ":"


def _wrap(text: str, first: str, rest: str) -> list[str]:
    wrapped = textwrap.wrap(
        text, WIDTH, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False
    )
    return wrapped or [first]


def render_text(title: str, header: list[str], sections: list[Section], lang: str) -> str:
    colon = COLON[lang]
    lines = [title, "=" * len(title), *header, ""]
    for section in sections:
        lines += [section.title, "-" * len(section.title)]
        for sentence in section.intro:
            lines += _wrap(sentence, "  ", "  ")
        for label, value in section.fields:  # values are never wrapped: fingerprints stay whole
            one_line = f"  {label}{colon}{value}"
            # A value too long for the label's line goes whole on its own line: a
            # fingerprint is copied and compared as one string, never cut.
            lines += [one_line] if len(one_line) <= WIDTH else [f"  {label}{colon}", f"    {value}"]
        for n, step in enumerate(section.steps, 1):
            lines += _wrap(step, f"  {n}. ", "     ")
        many = len(section.sentences) > 1
        for sentence in section.sentences:
            lines += _wrap(sentence, "  - " if many else "  ", "    " if many else "  ")
        for sentence in section.after:
            lines += _wrap(sentence, "  ", "  ")
        lines.append("")
    return "\n".join(lines)


_CSS = """
@page { size: A4; margin: 9mm 11mm; }
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 8pt; color: #111;
       max-width: 186mm; margin: 0 auto; line-height: 1.22; }
h1 { font-size: 13pt; margin: 0 0 3pt; border-bottom: 2px solid #1d4e89; padding-bottom: 2pt; }
h2 { font-size: 9.2pt; margin: 4pt 0 1pt; color: #1d4e89; }
.head { color: #333; margin: 0 0 2pt; display: inline; }
.head + .head::before { content: " · "; }
table { border-collapse: collapse; width: 100%; }
th { text-align: left; font-weight: normal; color: #333; width: 33%; vertical-align: top;
     padding: 0.8pt 6pt 0.8pt 0; }
td { padding: 0.8pt 0; }
code { font-family: "DejaVu Sans Mono", Consolas, monospace; font-size: 7.6pt;
       overflow-wrap: anywhere; }
code.hex { word-break: keep-all; overflow-wrap: normal; }
ol, ul { margin: 1pt 0; padding-left: 14pt; }
li, p { margin: 0.5pt 0; }
@media print { h2 { break-after: avoid; } tr, li { break-inside: avoid; } }
"""

HEX = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})+")


def _value_html(value: str) -> str:
    """Names, numbers and fingerprints in a monospaced font; a sentence as it is. A
    colon-hex fingerprint may break only after a ":", never inside a byte pair."""
    escaped = html.escape(value)
    if HEX.fullmatch(value):
        return f'<code class="hex">{escaped.replace(":", ":<wbr>")}</code>'
    return (
        escaped
        if " " in value and ":" not in value and "=" not in value
        else f"<code>{escaped}</code>"
    )


def render_html(title: str, header: list[str], sections: list[Section], lang: str) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{lang}"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        "<div>",
        *(f'<p class="head">{e(line)}</p>' for line in header),
        "</div>",
    ]
    for section in sections:
        parts.append(f"<section><h2>{e(section.title)}</h2>")
        parts += [f"<p>{e(s)}</p>" for s in section.intro]
        if section.fields:
            rows = "".join(
                f"<tr><th>{e(label)}</th><td>{_value_html(value)}</td></tr>"
                for label, value in section.fields
            )
            parts.append(f"<table>{rows}</table>")
        if section.steps:
            parts.append("<ol>" + "".join(f"<li>{e(s)}</li>" for s in section.steps) + "</ol>")
        if section.sentences:
            items = "".join(f"<li>{e(s)}</li>" for s in section.sentences)
            single = f"<p>{e(section.sentences[0])}</p>"
            parts.append(f"<ul>{items}</ul>" if len(section.sentences) > 1 else single)
        parts += [f"<p>{e(s)}</p>" for s in section.after]
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def cmd_card(args: argparse.Namespace) -> int:
    name = check_account_name(args.name)
    inst = common.open_instance(args)
    facts = gather(inst.config, inst.accounts, name, inst.clock.now())
    title, header, sections = build(facts, args.lang)
    if args.format == "html":
        print(render_html(title, header, sections, args.lang), end="")
    else:
        print(render_text(title, header, sections, args.lang), end="")
    return 0


def register(account_sub: Any, add: common.Add) -> None:
    """Add ``account card`` to the ``intake account`` parser."""
    p = add(account_sub, "card", cmd_card, "print a member's connection card (French by default)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--format", choices=("text", "html"), default="text")
    p.add_argument("--lang", choices=LANGS, default="fr")
