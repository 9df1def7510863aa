"""Alerts: what an incident says, and the one e-mail a group of them becomes. Pure.

Rules:
- An ``Alert`` is one incident: its ``kind`` (one of ``KINDS``), when, an optional
  ``subject`` (what it is about beyond the kind: an account under attack), the files
  concerned and the facts (``details``). It is JSON-serialisable both ways, so the queue
  on disk holds exactly what will be sent.
- Alerts of the same ``key`` (kind, and subject when there is one) are throttled
  together: they go out as ONE message (``compose``) that counts them and lists their
  files, never as a storm of mails.
- Every message is in French (what happened, when, which files, what to check) with an
  English tag in the subject; short, and it never carries a secret (alerts are built
  from audit records, which never hold one).
- Header values are made single-line here: no client-supplied text can add a header,
  and every value is shown by the one rule of ``intake.core.visible`` (``\\x1b``,
  ``\\u202e``): a name never reorders or hides text in a mail.
"""

from __future__ import annotations

import datetime as _dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from intake.core.clock import isoformat, parse_iso
from intake.core.visible import visible

MAX_FILES_LISTED = 50
MAX_VALUE_CHARS = 300


@dataclass(frozen=True)
class KindText:
    title: str  # French, for the subject and the first line
    tag: str  # English, in the subject
    what: str  # French: what happened, one or two sentences
    checks: tuple[str, ...]  # French: what to check, one line each


KINDS: dict[str, KindText] = {
    "vanished": KindText(
        "Sauvegarde disparue",
        "backup vanished",
        "Une sauvegarde reçue a disparu du disque sans que le balayeur l'ait détruite "
        "(suppression à la main, restauration, intrusion ?).",
        (
            "l'historique de l'entrée : intake catalog show ID",
            "le journal d'audit : intake audit show --event vanished",
            "qui s'est connecté au serveur à cette heure (journal système, sudo)",
            "s'il s'agit d'une perte ou d'une fuite de données : notification sous 24 h",
        ),
    ),
    "altered": KindText(
        "Sauvegarde altérée",
        "backup altered",
        "Le contenu d'une sauvegarde reçue ne correspond plus au SHA-256 enregistré à sa "
        "réception : elle a été modifiée sur le disque.",
        (
            "l'historique de l'entrée : intake catalog show ID",
            "le journal d'audit : intake audit show --event altered",
            "qui s'est connecté au serveur à cette heure (journal système, sudo)",
            "s'il s'agit d'une atteinte aux données : notification sous 24 h",
        ),
    ),
    "audit.verify": KindText(
        "Journal d'audit : vérification échouée",
        "audit log verification failed",
        "La vérification du journal d'audit a échoué : un enregistrement a été modifié, "
        "supprimé, inséré ou le journal a été tronqué.",
        (
            "le premier enregistrement en cause : intake audit verify",
            "comparer avec la dernière tête de chaîne gardée hors du serveur "
            "(intake audit verify --since-head FICHIER)",
            "qui a eu accès au dossier log/ de l'instance",
        ),
    ),
    "forward.failing": KindText(
        "Transfert vers l'éditeur en échec",
        "forward failing",
        "Des fichiers à transmettre à l'éditeur n'ont pas pu l'être depuis plus longtemps "
        "que le seuil fixé : ils attendent dans la boîte d'envoi.",
        (
            "la cause : intake audit show --event forward.failed",
            "ce qui attend : intake sweep --dry-run",
            "le serveur de l'éditeur : joignable ? clé d'hôte changée ? identifiants ?",
        ),
    ),
    "disk": KindText(
        "Espace disque sous la réserve",
        "disk below reserve",
        "L'espace libre du dossier des données est passé sous la réserve "
        "([limits] min_free_space) : les dépôts sont refusés tant qu'il y reste.",
        (
            "l'espace libre : df -h sur le dossier data/ de l'instance",
            "ce que le balayeur peut détruire : intake sweep --dry-run",
            "agrandir le volume ou libérer de la place (hors sauvegardes reçues)",
        ),
    ),
    "timestamp.failing": KindText(
        "Horodatage du journal d'audit en échec",
        "audit time-stamping failing",
        "L'autorité d'horodatage ([audit] tsa_url) ne répond pas ou refuse : la tête du "
        "journal d'audit n'est plus horodatée. Les dépôts continuent ; les essais aussi. "
        "Un enregistrement non horodaté pendant plus de deux intervalles fera échouer "
        "intake audit verify --tsa-ca-file.",
        (
            "l'autorité : joignable depuis le serveur (pare-feu, proxy, DNS) ? certificat ?",
            "les essais : journal du service (journalctl -u intake)",
            "le dernier horodatage : intake audit show --event timestamp",
        ),
    ),
    "banned": KindText(
        "Adresse bannie",
        "address banned",
        "Trop d'échecs de connexion depuis une adresse : elle est bannie pour un temps.",
        (
            "les échecs : intake audit show --event login.failed",
            "si l'adresse est celle d'un adhérent : poste compromis ? mot de passe oublié ?",
        ),
    ),
    "account.attacked": KindText(
        "Compte attaqué",
        "account under attack",
        "Un compte reçoit des tentatives de connexion en échec depuis plusieurs adresses.",
        (
            "les échecs : intake audit show --event login.failed --account NOM",
            "prévenir l'adhérent ; désactiver le compte si besoin : intake account disable NOM",
        ),
    ),
    "test": KindText(
        "Alerte de test",
        "test alert",
        "Ceci est un essai demandé par intake alert test : les alertes de ce serveur "
        "arrivent bien à cette adresse.",
        ("rien : si vous lisez ce message, la configuration [alerts] fonctionne",),
    ),
    "digest": KindText(
        "Résumé quotidien",
        "daily digest",
        "Ce qu'a fait le serveur depuis le résumé précédent.",
        ("le détail : intake audit show --since DATE",),
    ),
}

LABELS = {
    "account": "compte",
    "path": "chemin",
    "entry": "entrée du catalogue",
    "ip": "adresse",
    "protocol": "protocole",
    "reason": "motif",
    "size": "taille (octets)",
    "sha256": "SHA-256 enregistré",
    "actual_sha256": "SHA-256 trouvé",
    "until": "jusqu'à",
    "free": "espace libre (octets)",
    "reserve": "réserve (octets)",
    "failing_since": "en échec depuis",
    "attempt": "tentatives",
    "first_bad": "premier enregistrement en cause",
    "record": "enregistrement",
    "network": "réseau",
    "failures": "échecs",
    "addresses": "adresses distinctes",
}


def one_line(value: object, limit: int = MAX_VALUE_CHARS) -> str:
    """A value made safe for one line of a message or a header: control, format and bidi
    characters as visible escapes (``intake.core.visible``, the rule of every reader)."""
    text = visible(str(value))
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True)
class Alert:
    """One incident; see the module rules."""

    kind: str
    at: _dt.datetime
    subject: str = ""
    files: tuple[str, ...] = ()
    details: dict[str, str] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r}")

    @property
    def key(self) -> str:
        """What the throttle counts by: the kind, and the subject when there is one."""
        return f"{self.kind}:{self.subject}" if self.subject else self.kind

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "at": isoformat(self.at),
            "subject": self.subject,
            "files": list(self.files),
            "details": dict(self.details),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Alert:
        return cls(
            kind=str(doc["kind"]),
            at=parse_iso(str(doc["at"])),
            subject=str(doc.get("subject", "")),
            files=tuple(str(f) for f in doc.get("files", ())),
            details={str(k): str(v) for k, v in dict(doc.get("details", {})).items()},
            id=str(doc.get("id", uuid.uuid4().hex[:16])),
        )


@dataclass(frozen=True)
class Message:
    """One e-mail (and the command hook's JSON) for a group of alerts of one key."""

    subject: str
    body: str
    payload: dict[str, Any]

    def payload_bytes(self) -> bytes:
        return json.dumps(self.payload, ensure_ascii=False, indent=1).encode("utf-8")


def _ordered(details: dict[str, str]) -> list[tuple[str, str]]:
    """Facts in ``LABELS`` order (who, what, where first), the others after."""
    order = {k: n for n, k in enumerate(LABELS)}
    return sorted(details.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))


def _when(moment: _dt.datetime) -> str:
    return moment.astimezone(_dt.UTC).strftime("%d/%m/%Y %H:%M:%S UTC")


def compose(alerts: list[Alert], server: str, instance: str) -> Message:
    """The one message for ``alerts`` (same key, oldest first); see the module rules."""
    if not alerts:
        raise ValueError("nothing to compose")
    first, last = alerts[0], alerts[-1]
    text = KINDS[first.kind]
    count = len(alerts)
    subject = f"[intake {one_line(server, 80)}] {text.title} ({text.tag})"
    if first.subject:
        subject += f" : {one_line(first.subject, 80)}"
    if count > 1:
        subject += f" - {count} événements"
    lines = [text.what, ""]
    if count == 1:
        lines.append(f"Quand : {_when(first.at)}")
    else:
        lines.append(f"Quand : {count} événements du {_when(first.at)} au {_when(last.at)}")
    lines.append(f"Serveur : {one_line(server, 80)} (instance {one_line(instance, 200)})")
    files = [f for a in alerts for f in a.files]
    if files:
        lines += ["", f"Fichiers ({len(files)}) :"]
        lines += [f"  - {one_line(f)}" for f in files[:MAX_FILES_LISTED]]
        if len(files) > MAX_FILES_LISTED:
            lines.append(f"  - ... et {len(files) - MAX_FILES_LISTED} autres")
    shown = [a for a in alerts if a.details][:MAX_FILES_LISTED]
    if shown:
        lines += ["", "Détails :"]
        for a in shown:
            facts = [f"{LABELS.get(k, k)} : {one_line(v)}" for k, v in _ordered(a.details)]
            if count == 1:
                lines += [f"  {f}" for f in facts]
            else:
                lines.append(f"  - {_when(a.at)} : " + "; ".join(facts))
    entries = sorted({a.details["entry"] for a in alerts if "entry" in a.details})
    lines += ["", "À vérifier :"]
    for check in text.checks:
        if "show ID" in check and entries:
            check = check.replace("show ID", f"show {' / '.join(entries[:5])}")
        lines.append(f"  - {check}")
    lines += [
        "",
        "-- ",
        "Message automatique d'intake ; chaque envoi est inscrit au journal d'audit "
        "(événement alert).",
    ]
    body = "\n".join(lines) + "\n"
    payload = {
        "kind": first.kind,
        "key": first.key,
        "subject": subject,
        "title": text.title,
        "tag": text.tag,
        "server": server,
        "count": count,
        "first_at": isoformat(first.at),
        "last_at": isoformat(last.at),
        "text": body,
        "alerts": [a.to_json() for a in alerts],
    }
    return Message(subject, body, payload)
