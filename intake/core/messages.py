"""What a member reads when the server refuses or fails: one table, both protocols.

SFTP sends the text in its status reply (WinSCP shows it under "Error message from
server", psftp prints it); FTPS puts it after the reply code (FileZilla shows the line).
The status code still says what kind of failure it is (SFTP permission denied / no such
file / failure; FTP 550, 451, 554 ...): clients decide on the code, people read the text.

Rules:
- One text per ``Say``, written here only; front-ends never write a member-facing text of
  their own for these cases. The detail (which rule, which path) goes to the audit log,
  never to the client.
- French first (members are French collectivities), short, saying what to do when there
  is something to do; the standard English term in parentheses, for the agency's support
  and for tools that look for it. No trailing full stop (FTP replies add their own).
"""

from __future__ import annotations

import enum


class Say(enum.StrEnum):
    DENIED = "denied"
    READ_ONLY = "read-only"
    WRITE_ONCE = "write-once"
    EXISTS = "exists"
    ATTRIBUTES = "attributes"
    NAME = "name"
    NOT_FOUND = "not-found"
    QUOTA = "quota"
    TOO_BIG = "too-big"
    DISK_FULL = "disk-full"
    INTERRUPTED = "interrupted"
    RESUME = "resume"
    FAILED = "failed"
    BLOCKED = "blocked"  # FTPS 421 to a blocked address; ``{time}`` and ``{date}``, Paris


TEXT: dict[Say, str] = {
    Say.DENIED: "Refusé : opération non autorisée pour ce compte (permission denied)",
    Say.READ_ONLY: "Refusé : ce dossier est en lecture seule (permission denied)",
    Say.WRITE_ONCE: (
        "Refusé : un fichier reçu ne peut être ni supprimé ni modifié (permission denied)"
    ),
    Say.EXISTS: (
        "Refusé : un fichier de ce nom existe déjà ; envoyez-le sous un autre nom"
        " (permission denied)"
    ),
    Say.ATTRIBUTES: (
        "Refusé : seules la date et l'heure d'un fichier peuvent être changées (permission denied)"
    ),
    Say.NAME: "Refusé : nom de fichier ou de dossier non accepté (permission denied)",
    Say.NOT_FOUND: "Introuvable : ce fichier ou ce dossier n'existe pas (no such file)",
    Say.QUOTA: (
        "Refusé : l'espace de ce compte est plein ; fichier non reçu, contactez l'agence"
        " (quota exceeded)"
    ),
    Say.TOO_BIG: "Refusé : fichier trop volumineux ; fichier non reçu (file too large)",
    Say.DISK_FULL: (
        "Échec : le serveur manque de place ; fichier non reçu, réessayez plus tard (no space left)"
    ),
    Say.INTERRUPTED: (
        "Envoi interrompu : fichier non reçu, envoyez-le à nouveau en entier (upload interrupted)"
    ),
    Say.RESUME: (
        "Refusé : un envoi ne peut pas être repris ; envoyez le fichier en entier (resume refused)"
    ),
    Say.FAILED: "Échec : l'opération n'a pas abouti (failure)",
    Say.BLOCKED: (
        "Connexion refusée : trop d'échecs de connexion depuis votre adresse, qui est"
        " bloquée jusqu'à {time} (heure de Paris) le {date} ; réessayez ensuite ou"
        " contactez l'agence (blocked)"
    ),
}

DEFAULT_BANNER = (
    "Service de dépôt des sauvegardes des collectivités,\n"
    "géré par l'agence technique départementale.\n"
    "Accès réservé aux comptes autorisés.\n"
    "Toutes les connexions et opérations sont enregistrées et tracées."
)
"""The pre-login banner (SSH) and FTPS welcome, unless ``[server] banner`` says otherwise."""


def text(say: Say) -> str:
    return TEXT[say]


def for_error(exc: BaseException) -> str:
    """The member-facing text of an intake error (its ``say``), or the generic failure."""
    say = getattr(exc, "say", Say.FAILED)
    return TEXT[say] if isinstance(say, Say) else TEXT[Say.FAILED]
