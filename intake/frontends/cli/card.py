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
import textwrap
from dataclasses import dataclass, field
from typing import Any

from intake.core.paths import check_account_name
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
    """The card's title, its header lines and its sections."""

    def t(key: str, **fields: object) -> str:
        return text(key, lang, **fields)

    colon = " : " if lang == "fr" else ": "
    header = [f"{t('for')}{colon}{facts.account}"]
    if facts.organisation:
        header.insert(0, facts.organisation)
    header.append(f"{t('issued')} {facts.issued:%d/%m/%Y}")
    if not facts.enabled:
        header.append(t("disabled"))
    login = Section(t("s_login"))
    login.fields = [
        (t("host"), facts.host),
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
            check.fields.append((t("fp_winscp"), key.winscp))
            check.fields.append((t("fp_openssh"), key.openssh))
    if facts.ftps_port is not None and facts.tls_lower and facts.tls_upper:
        check.fields.append((t("fp_tls"), facts.tls_lower))
        check.fields.append((t("fp_tls_upper"), facts.tls_upper))
    check.after = [t("fp_one")]
    values: dict[str, object] = {"host": facts.host, "account": facts.account}
    values |= {"sftp_port": facts.sftp_port, "ftps_port": facts.ftps_port}
    sections = [login, check]
    if facts.sftp_port is not None:
        sections.append(Section(t("s_winscp"), steps=t("winscp_steps", **values).split("\n")))
        sections.append(Section(t("s_filezilla"), steps=t("filezilla_steps", **values).split("\n")))
    if facts.ftps_port is not None:
        if facts.sftp_port is None:
            sections.append(Section(t("s_filezilla")))
        sections[-1].after.append(t("filezilla_ftps", **values))
    keep = (
        t("files_keep", keep=duration(facts.keep, lang)) if facts.keep else t("files_keep_unknown")
    )
    sections.append(
        Section(
            t("s_files"),
            sentences=[
                t("files_received"),
                t("files_interrupted"),
                t("files_write_once"),
                keep,
                t("files_receipts"),
                t("files_traced"),
            ],
        )
    )
    sections.append(Section(t("s_help"), sentences=[facts.contact or t("help_none")]))
    return t("title"), header, sections


WIDTH = 86  # columns of the text card: one A4 page in a monospaced 10 pt font


def _wrap(text: str, first: str, rest: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=rest) or [first]


def render_text(title: str, header: list[str], sections: list[Section], lang: str) -> str:
    colon = " : " if lang == "fr" else ": "  # French typography: a space before the colon
    lines = [title, "=" * len(title), *header, ""]
    for section in sections:
        lines += [section.title, "-" * len(section.title)]
        for sentence in section.intro:
            lines += _wrap(sentence, "  ", "  ")
        for label, value in section.fields:  # values are never wrapped: fingerprints stay whole
            one_line = f"  {label}{colon}{value}"
            lines += (
                [one_line] if len(one_line) <= WIDTH else [f"  {label}{colon}", f"      {value}"]
            )
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
@page { size: A4; margin: 14mm 16mm; }
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10.5pt; color: #111;
       max-width: 180mm; margin: 0 auto; line-height: 1.35; }
h1 { font-size: 16pt; margin: 0 0 4pt; border-bottom: 2px solid #1d4e89; padding-bottom: 3pt; }
h2 { font-size: 11.5pt; margin: 10pt 0 3pt; color: #1d4e89; }
.head { color: #333; margin: 0 0 4pt; }
table { border-collapse: collapse; width: 100%; }
th { text-align: left; font-weight: normal; color: #333; width: 34%; vertical-align: top;
     padding: 1.5pt 6pt 1.5pt 0; }
td { padding: 1.5pt 0; }
code { font-family: "DejaVu Sans Mono", Consolas, monospace; font-size: 9pt;
       word-break: break-all; }
ol, ul { margin: 2pt 0; padding-left: 16pt; }
p { margin: 2pt 0; }
@media print { h2 { break-after: avoid; } section { break-inside: avoid; } }
"""


def _value_html(value: str) -> str:
    """Names, numbers and fingerprints in a monospaced font; a sentence as it is."""
    escaped = html.escape(value)
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
        *(f'<p class="head">{e(line)}</p>' for line in header),
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
