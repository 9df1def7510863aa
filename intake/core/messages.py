"""What a member reads from the server: one table, both protocols, French by default.

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
- The language is ``[server] lang`` (``fr``, the default, or ``en``): ``text(say, lang)``.
  ``TEXT`` is the French table and holds every ``Say``; ``ENGLISH`` gives the English
  text, and a ``Say`` it lacks is answered in French (never a missing reply).
- Beyond refusals, the table holds every FTPS reply text a member reads (login, transfer,
  timeouts, ``LIMIT_*`` for the limits): pyftpdlib's own English replies are replaced by
  these in ``intake.frontends.ftps.replies``; the reply code never changes. SFTP status
  replies without a text of their own take ``SFTP_*``.
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
    # limits (``LimitExceeded``): the audit record names the limit and its value
    TOO_MANY_FILES = "too-many-files"
    SPARSE = "sparse"
    # FTPS replies (codes in ``intake.frontends.ftps.replies``)
    WELCOME = "welcome"
    TLS_REQUIRED = "tls-required"
    USER_OK = "user-ok"
    LOGGED_IN = "logged-in"
    LOGIN_FAILED = "login-failed"
    NOT_LOGGED_IN = "not-logged-in"
    ALREADY_LOGGED_IN = "already-logged-in"
    USER_FIRST = "user-first"
    UNAVAILABLE = "unavailable"
    LOGIN_TIMEOUT = "login-timeout"
    IDLE_TIMEOUT = "idle-timeout"
    DATA_TIMEOUT = "data-timeout"
    GOODBYE = "goodbye"
    TLS_OK = "tls-ok"
    TLS_FAILED = "tls-failed"
    PROTECTION = "protection"
    PROT_FIRST = "prot-first"
    PBSZ_OK = "pbsz-ok"
    TYPE_BINARY = "type-binary"
    TYPE_ASCII = "type-ascii"
    OPENING_DATA = "opening-data"
    DATA_OPEN = "data-open"
    TRANSFER_OK = "transfer-ok"
    NO_DATA_CONNECTION = "no-data-connection"
    CURRENT_FOLDER = "current-folder"
    FOLDER_CREATED = "folder-created"
    RENAME_NEXT = "rename-next"
    RENAMED = "renamed"
    RENAME_FIRST = "rename-first"
    TIMES_SET = "times-set"
    BAD_TIME = "bad-time"
    UTF8 = "utf8"
    OPTIONS_OK = "options-ok"
    NOTHING_DONE = "nothing-done"
    ABORT_NONE = "abort-none"
    ABORTED = "aborted"
    PASSIVE = "passive"
    EXTENDED_PASSIVE = "extended-passive"
    ACTIVE_OK = "active-ok"
    NOT_UNDERSTOOD = "not-understood"
    NOT_IMPLEMENTED = "not-implemented"
    BAD_ARGUMENTS = "bad-arguments"
    BAD_SEQUENCE = "bad-sequence"
    NOT_A_FOLDER = "not-a-folder"
    RESTART = "restart"
    HELP = "help"
    STRUCTURE = "structure"
    MODE = "mode"
    END_LIST = "end-list"
    DONE = "done"  # any other positive reply
    PENDING = "pending"  # any other intermediate reply (1xx, 3xx)
    TRY_LATER = "try-later"  # any other transient failure (4xx)
    REFUSED = "refused"  # any other permanent failure (5xx)
    # SFTP status replies that carry no text of their own
    SFTP_OK = "sftp-ok"
    SFTP_EOF = "sftp-eof"
    SFTP_BAD_MESSAGE = "sftp-bad-message"
    SFTP_UNSUPPORTED = "sftp-unsupported"


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
    Say.TOO_MANY_FILES: (
        "Refusé : trop de fichiers ouverts à la fois ; fermez-en ou réessayez plus tard"
        " (too many open files)"
    ),
    Say.SPARSE: (
        "Refusé : le fichier doit être envoyé d'un bout à l'autre, sans trou ; fichier non"
        " reçu (sparse write refused)"
    ),
    Say.WELCOME: "FTPS explicite : AUTH TLS requis (explicit FTPS, AUTH TLS required)",
    Say.TLS_REQUIRED: (
        "Connexion non chiffrée refusée : activez le FTPS explicite (AUTH TLS) avant de vous"
        " identifier (TLS required)"
    ),
    Say.USER_OK: "Identifiant reçu, envoyez le mot de passe (password required)",
    Say.LOGGED_IN: "Connexion réussie (login successful)",
    Say.LOGIN_FAILED: "Identifiant ou mot de passe incorrect (authentication failed)",
    Say.NOT_LOGGED_IN: "Identifiez-vous d'abord, avec USER puis PASS (not logged in)",
    Say.ALREADY_LOGGED_IN: (
        "Déjà connecté ; reconnectez-vous pour changer de compte (already logged in)"
    ),
    Say.USER_FIRST: "Envoyez d'abord l'identifiant (USER) (login with USER first)",
    Say.UNAVAILABLE: (
        "Service momentanément indisponible, connexion fermée ; réessayez plus tard"
        " (service not available)"
    ),
    Say.LOGIN_TIMEOUT: (
        "Délai de connexion dépassé, connexion fermée ; reconnectez-vous (login timeout)"
    ),
    Say.IDLE_TIMEOUT: "Inactif depuis trop longtemps, connexion fermée (idle timeout)",
    Say.DATA_TIMEOUT: (
        "Connexion de données inactive trop longtemps, transfert abandonné (data timeout)"
    ),
    Say.GOODBYE: "Au revoir (goodbye)",
    Say.TLS_OK: "Chiffrement TLS en place (AUTH TLS successful)",
    Say.TLS_FAILED: "Échec de la négociation TLS (TLS handshake failed)",
    Say.PROTECTION: "Connexions de données chiffrées (protection set to private)",
    Say.PROT_FIRST: (
        "Chiffrez d'abord les connexions de données avec PBSZ 0 puis PROT P (use PROT P)"
    ),
    Say.PBSZ_OK: "PBSZ=0 accepté (PBSZ=0 successful)",
    Say.TYPE_BINARY: "Mode binaire (type set to binary)",
    Say.TYPE_ASCII: "Mode texte (type set to ASCII)",
    Say.OPENING_DATA: "Ouverture de la connexion de données (opening data connection)",
    Say.DATA_OPEN: "Connexion de données ouverte, transfert en cours (transfer starting)",
    Say.TRANSFER_OK: "Transfert terminé (transfer complete)",
    Say.NO_DATA_CONNECTION: (
        "Connexion de données impossible ; réessayez (can't open data connection)"
    ),
    Say.CURRENT_FOLDER: "est le dossier courant (current directory)",
    Say.FOLDER_CREATED: "dossier créé (directory created)",
    Say.RENAME_NEXT: "Prêt : envoyez le nouveau nom (ready for destination name)",
    Say.RENAMED: "Renommé (renaming ok)",
    Say.RENAME_FIRST: "Indiquez d'abord le nom à changer (RNFR) (use RNFR first)",
    Say.TIMES_SET: "Date et heure du fichier changées (times set)",
    Say.BAD_TIME: "Date invalide : attendu AAAAMMJJHHMMSS en UTC (invalid time)",
    Say.UTF8: "Noms en UTF-8 (always in UTF8 mode)",
    Say.OPTIONS_OK: "Options acceptées (options set)",
    Say.NOTHING_DONE: "Rien à faire (NOOP ok)",
    Say.ABORT_NONE: "Aucun transfert à interrompre (no transfer to abort)",
    Say.ABORTED: "Transfert interrompu (transfer aborted)",
    # No parenthesis: clients take the address from the parenthesis that follows.
    Say.PASSIVE: "Mode passif, entering passive mode",
    Say.EXTENDED_PASSIVE: "Mode passif étendu, entering extended passive mode",
    Say.ACTIVE_OK: "Mode actif accepté (active data connection established)",
    Say.NOT_UNDERSTOOD: "Commande inconnue (command not understood)",
    Say.NOT_IMPLEMENTED: "Commande non prise en charge (command not implemented)",
    Say.BAD_ARGUMENTS: "Paramètres invalides (syntax error in parameters)",
    Say.BAD_SEQUENCE: "Commande hors de son ordre (bad sequence of commands)",
    Say.NOT_A_FOLDER: "Ce n'est pas un dossier (not a directory)",
    Say.RESTART: "Reprise demandée (restart marker)",
    Say.HELP: "Aide (help)",
    Say.STRUCTURE: "Structure fichier (file structure)",
    Say.MODE: "Mode flux (stream mode)",
    Say.END_LIST: "Fin de la liste (end)",
    Say.DONE: "Fait (ok)",
    Say.PENDING: "En cours (pending)",
    Say.TRY_LATER: "Échec temporaire ; réessayez (try again later)",
    Say.REFUSED: "Refusé (refused)",
    Say.SFTP_OK: "Fait (success)",
    Say.SFTP_EOF: "Fin du fichier (end of file)",
    Say.SFTP_BAD_MESSAGE: "Requête invalide (bad message)",
    Say.SFTP_UNSUPPORTED: "Opération non prise en charge (operation unsupported)",
}

ENGLISH: dict[Say, str] = {
    Say.DENIED: "Refused: operation not allowed for this account (permission denied)",
    Say.READ_ONLY: "Refused: this folder is read-only (permission denied)",
    Say.WRITE_ONCE: (
        "Refused: a received file can be neither deleted nor changed (permission denied)"
    ),
    Say.EXISTS: "Refused: a file of this name exists; send it under another name",
    Say.ATTRIBUTES: "Refused: only a file's date and time can be changed (permission denied)",
    Say.NAME: "Refused: file or folder name not accepted (permission denied)",
    Say.NOT_FOUND: "Not found: no such file or folder (no such file)",
    Say.QUOTA: "Refused: this account's space is full; file not received, call the agency",
    Say.TOO_BIG: "Refused: file too large; file not received (file too large)",
    Say.DISK_FULL: "Failed: the server is short of space; file not received, try again later",
    Say.INTERRUPTED: "Upload interrupted: file not received, send it again whole",
    Say.RESUME: "Refused: an upload cannot be resumed; send the whole file",
    Say.FAILED: "Failed: the operation did not succeed (failure)",
    Say.TOO_MANY_FILES: "Refused: too many files open at once; close some or try again later",
    Say.SPARSE: "Refused: a file must be sent from start to end, without holes; not received",
    Say.WELCOME: "Explicit FTPS: AUTH TLS required",
    Say.TLS_REQUIRED: "TLS required: use explicit FTPS (AUTH TLS) before logging in",
    Say.USER_OK: "Login received, send the password",
    Say.LOGGED_IN: "Login successful",
    Say.LOGIN_FAILED: "Authentication failed",
    Say.NOT_LOGGED_IN: "Log in with USER and PASS first",
    Say.ALREADY_LOGGED_IN: "Already logged in; reconnect to log in as someone else",
    Say.USER_FIRST: "Login with USER first",
    Say.UNAVAILABLE: "Service not available, closing control connection; try again later",
    Say.BLOCKED: (
        "Connection refused: too many failed logins from your address, which is blocked"
        " until {time} (Paris time) on {date}; try again then or contact the agency (blocked)"
    ),
    Say.LOGIN_TIMEOUT: "Login timeout, closing control connection",
    Say.IDLE_TIMEOUT: "Idle timeout, closing control connection",
    Say.DATA_TIMEOUT: "Data connection timed out, transfer aborted",
    Say.GOODBYE: "Goodbye",
    Say.TLS_OK: "AUTH TLS successful",
    Say.TLS_FAILED: "TLS handshake failed",
    Say.PROTECTION: "Protection set to Private",
    Say.PROT_FIRST: "Use PBSZ 0 then PROT P first",
    Say.PBSZ_OK: "PBSZ=0 successful",
    Say.TYPE_BINARY: "Type set to binary",
    Say.TYPE_ASCII: "Type set to ASCII",
    Say.OPENING_DATA: "Opening data connection",
    Say.DATA_OPEN: "Data connection already open, transfer starting",
    Say.TRANSFER_OK: "Transfer complete",
    Say.NO_DATA_CONNECTION: "Can't open data connection; try again",
    Say.CURRENT_FOLDER: "is the current directory",
    Say.FOLDER_CREATED: "directory created",
    Say.RENAME_NEXT: "Ready for destination name",
    Say.RENAMED: "Renaming ok",
    Say.RENAME_FIRST: "Bad sequence of commands: use RNFR first",
    Say.TIMES_SET: "File times set",
    Say.BAD_TIME: "Invalid time: expected YYYYMMDDHHMMSS (UTC)",
    Say.UTF8: "Always in UTF8 mode",
    Say.OPTIONS_OK: "Options set",
    Say.NOTHING_DONE: "NOOP ok",
    Say.ABORT_NONE: "No transfer to abort",
    Say.ABORTED: "Transfer aborted",
    Say.PASSIVE: "Entering passive mode",
    Say.EXTENDED_PASSIVE: "Entering extended passive mode",
    Say.ACTIVE_OK: "Active data connection established",
    Say.NOT_UNDERSTOOD: "Command not understood",
    Say.NOT_IMPLEMENTED: "Command not implemented",
    Say.BAD_ARGUMENTS: "Syntax error in parameters",
    Say.BAD_SEQUENCE: "Bad sequence of commands",
    Say.NOT_A_FOLDER: "Not a directory",
    Say.RESTART: "Restart marker set",
    Say.HELP: "Help",
    Say.STRUCTURE: "File structure",
    Say.MODE: "Stream mode",
    Say.END_LIST: "End",
    Say.DONE: "OK",
    Say.PENDING: "Pending",
    Say.TRY_LATER: "Transient failure; try again",
    Say.REFUSED: "Refused",
    Say.SFTP_OK: "Success",
    Say.SFTP_EOF: "End of file",
    Say.SFTP_BAD_MESSAGE: "Bad message",
    Say.SFTP_UNSUPPORTED: "Operation unsupported",
}

LANGS = ("fr", "en")

DEFAULT_BANNER = (
    "Service de dépôt des sauvegardes des collectivités,\n"
    "géré par l'agence technique départementale.\n"
    "Accès réservé aux comptes autorisés.\n"
    "Toutes les connexions et opérations sont enregistrées et tracées."
)
"""The pre-login banner (SSH) and FTPS welcome, unless ``[server] banner`` says otherwise."""


def text(say: Say, lang: str = "fr") -> str:
    """The text of ``say`` in ``lang`` (French when the language lacks it)."""
    if lang == "en" and say in ENGLISH:
        return ENGLISH[say]
    return TEXT[say]


def for_error(exc: BaseException, lang: str = "fr") -> str:
    """The member-facing text of an intake error (its ``say``), or the generic failure."""
    say = getattr(exc, "say", Say.FAILED)
    return text(say if isinstance(say, Say) else Say.FAILED, lang)
