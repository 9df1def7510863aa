"""The words of a member's connection card, in French (the default) and English.

Written for a town-hall secretary, not an engineer: short sentences, the client's own
button names in quotes, every technical word explained once. One table, keyed by message;
``{name}`` fields are filled from ``intake.services.documents.card.CardFacts``.
"""

from __future__ import annotations

from intake.core.durations import Duration, Unit

LANGS = ("fr", "en")

TEXTS: dict[str, dict[str, str]] = {
    "title": {
        "fr": "Dépôt de vos sauvegardes : fiche de connexion",
        "en": "Depositing your backups: connection card",
    },
    "title_technician": {
        "fr": "Accès technicien aux sauvegardes : fiche de connexion",
        "en": "Technician access to the backups: connection card",
    },
    "title_auditor": {
        "fr": "Accès auditeur au journal d'audit : fiche de connexion",
        "en": "Auditor access to the audit log: connection card",
    },
    "fp_tls_sha1": {
        "fr": "FTPS, la même en SHA-1 (affichée par lftp)",
        "en": "FTPS, the same in SHA-1 (as lftp shows it)",
    },
    "s_trust": {
        "fr": "Si vous utilisez le FTPS : faire confiance au certificat du serveur",
        "en": "If you use FTPS: trusting the server's certificate",
    },
    "trust_intro": {
        "fr": "Notre certificat n'est pas signé par une autorité connue de votre logiciel : "
        "il faut lui dire de faire confiance à celui-ci, après avoir vérifié son empreinte "
        "(point 2).",
        "en": "Our certificate is not signed by an authority your program knows: tell it to "
        "trust this one, after checking its fingerprint (section 2).",
    },
    "trust_steps": {
        "fr": "FileZilla : à la première connexion, la fenêtre « Certificat inconnu » "
        "montre l'empreinte SHA-256 ; si elle est identique, cochez « Toujours faire "
        "confiance à ce certificat pour les sessions futures », puis « OK ».\n"
        "WinSCP : la fenêtre d'avertissement sur le certificat montre l'empreinte SHA-256 ; "
        "si elle est identique, cliquez sur « Oui » (WinSCP s'en souvient).\n"
        "lftp : il refuse d'abord en affichant l'empreinte SHA-1 entre parenthèses ; si "
        "elle est celle de cette fiche, ajoutez à ~/.lftprc la ligne « set "
        "ssl:verify-certificate/{sha1} no » (avec « set ftp:ssl-force true » et « set "
        "ftp:ssl-protect-data true »).\n"
        "curl et rclone : enregistrez le certificat avec « openssl s_client -connect "
        "{host}:{ftps_port} -starttls ftp < /dev/null | openssl x509 -out intake.crt », "
        "vérifiez « openssl x509 -in intake.crt -noout -fingerprint -sha256 » (point 2), "
        "puis curl --ssl-reqd --cacert intake.crt, et pour rclone la variable "
        "SSL_CERT_FILE=intake.crt (type ftp, explicit_tls = true).",
        "en": "FileZilla: on the first connection, the 'Unknown certificate' window shows "
        "the SHA-256 fingerprint; if it is the same, tick 'Always trust this certificate in "
        "future sessions', then 'OK'.\n"
        "WinSCP: the certificate warning shows the SHA-256 fingerprint; if it is the same, "
        "click 'Yes' (WinSCP remembers it).\n"
        "lftp: it first refuses, showing the SHA-1 fingerprint in parentheses; if it is "
        "this card's, add to ~/.lftprc the line 'set ssl:verify-certificate/{sha1} no' "
        "(with 'set ftp:ssl-force true' and 'set ftp:ssl-protect-data true').\n"
        "curl and rclone: save the certificate with 'openssl s_client -connect "
        "{host}:{ftps_port} -starttls ftp < /dev/null | openssl x509 -out intake.crt', check "
        "'openssl x509 -in intake.crt -noout -fingerprint -sha256' (section 2), then curl "
        "--ssl-reqd --cacert intake.crt, and for rclone the variable "
        "SSL_CERT_FILE=intake.crt (type ftp, explicit_tls = true).",
    },
    "files_receipts_open": {
        "fr": "Le dossier « .receipts » est caché : dans WinSCP, appuyez sur Ctrl+O "
        "(« Ouvrir un répertoire ») et tapez /.receipts ; dans FileZilla, tapez /.receipts "
        "dans le champ « Site distant » puis appuyez sur Entrée.",
        "en": "The '.receipts' folder is hidden: in WinSCP, press Ctrl+O ('Open directory') "
        "and type /.receipts; in FileZilla, type /.receipts in the 'Remote site' box and "
        "press Enter.",
    },
    "s_technician": {
        "fr": "5. Ce que vous voyez et ce que vous pouvez faire",
        "en": "5. What you see and what you may do",
    },
    "tech_members": {
        "fr": "/nom-de-l-adhérent/… : les sauvegardes de chaque adhérent, en lecture "
        "seule. Téléchargez celle qu'il faut restaurer ; rien ne peut y être modifié ni "
        "supprimé.",
        "en": "/member-name/…: every member's backups, read-only. Download the one to "
        "restore; nothing there can be changed or deleted.",
    },
    "tech_outbox": {
        "fr": "/outbox/ : déposez ici ce qui doit partir chez l'éditeur. Le fichier lui est "
        "transmis au prochain passage du balayeur, puis détruit ici une fois que l'éditeur "
        "l'a reçu.",
        "en": "/outbox/: put here what must go to the vendor. The file is sent at the next "
        "sweep, then destroyed here once the vendor holds it.",
    },
    "tech_traced": {
        "fr": "Chaque lecture d'une sauvegarde est enregistrée (qui, quoi, quand) et figure "
        "dans le rapport d'audit de l'adhérent.",
        "en": "Every read of a backup is recorded (who, what, when) and appears in the "
        "member's audit report.",
    },
    "s_auditor": {
        "fr": "5. Ce que vous voyez, et comment vérifier",
        "en": "5. What you see, and how to verify it",
    },
    "audit_log": {
        "fr": "/audit/ : le journal d'audit, un fichier par mois (audit-AAAA-MM.jsonl), en "
        "lecture seule. Vous ne voyez aucun contenu de sauvegarde.",
        "en": "/audit/: the audit log, one file per month (audit-YYYY-MM.jsonl), read-only. "
        "You see no backup's content.",
    },
    "audit_reports": {
        "fr": "/audit/reports/AAAA-MM/ : les rapports mensuels, un par adhérent, et "
        "_all.html pour la synthèse ; ouvrez-les dans un navigateur, ils s'impriment sur A4.",
        "en": "/audit/reports/YYYY-MM/: the monthly reports, one per member, and _all.html "
        "for the summary; open them in a browser, they print on A4.",
    },
    "audit_verify": {
        "fr": "Pour vérifier le journal hors du serveur : copiez le dossier /audit/, "
        "demandez à l'agence la clé publique d'audit (fichier audit.pub, son identifiant "
        "est ci-dessous), puis : intake audit verify --public-key audit.pub --log-dir "
        "DOSSIER. Un certificat de destruction ou un reçu : intake audit verify-document "
        "FICHIER --public-key audit.pub.",
        "en": "To verify the log away from the server: copy the /audit/ folder, ask the "
        "agency for the audit public key (file audit.pub, its id is below), then: intake "
        "audit verify --public-key audit.pub --log-dir FOLDER. A destruction certificate "
        "or a receipt: intake audit verify-document FILE --public-key audit.pub.",
    },
    "audit_key": {"fr": "Clé publique d'audit (identifiant)", "en": "Audit public key (id)"},
    "outbox_keep": {
        "fr": "Ce que vous déposez dans /outbox/ est détruit {keep} après sa réception.",
        "en": "What you put in /outbox/ is destroyed {keep} after it is received.",
    },
    "for": {"fr": "Pour", "en": "For"},
    "issued": {"fr": "Fiche éditée le", "en": "Issued on"},
    "disabled": {
        "fr": "Attention : ce compte est actuellement désactivé.",
        "en": "Note: this account is currently disabled.",
    },
    "s_login": {"fr": "1. Vos informations de connexion", "en": "1. Your connection details"},
    "host": {"fr": "Adresse du serveur", "en": "Server address"},
    "login": {"fr": "Identifiant", "en": "Login"},
    "password": {"fr": "Mot de passe", "en": "Password"},
    "password_apart": {
        "fr": "celui qui vous a été remis à part (il n'est jamais écrit sur cette fiche)",
        "en": "the one given to you separately (it is never written on this card)",
    },
    "sftp_port": {"fr": "Port SFTP (conseillé)", "en": "SFTP port (recommended)"},
    "ftps_port": {
        "fr": "Port FTPS (FTP avec chiffrement TLS explicite)",
        "en": "FTPS port (FTP with explicit TLS encryption)",
    },
    "protocols": {
        "fr": "SFTP et FTPS sont deux façons de se connecter. Les deux chiffrent vos "
        "fichiers pendant le transfert. Utilisez SFTP si vous pouvez.",
        "en": "SFTP and FTPS are two ways to connect. Both encrypt your files while they "
        "travel. Use SFTP if you can.",
    },
    "s_check": {
        "fr": "2. Vérifier que vous êtes bien sur notre serveur",
        "en": "2. Check that you are on our server",
    },
    "check_intro": {
        "fr": "À la première connexion, votre logiciel affiche une « empreinte » : une suite "
        "de lettres et de chiffres propre à notre serveur. Comparez-la avec celle de cette "
        "fiche. Si elle est identique, acceptez. Si elle est différente, n'acceptez pas et "
        "appelez-nous : quelqu'un essaie peut-être de se faire passer pour nous.",
        "en": "The first time you connect, your program shows a 'fingerprint': a string of "
        "letters and digits unique to our server. Compare it with the one on this card. If it "
        "is the same, accept it. If it differs, do not accept, and call us: someone may be "
        "pretending to be our server.",
    },
    "fp_winscp": {
        "fr": "SFTP, clé {kind}, affichée par WinSCP",
        "en": "SFTP, {kind} key, as WinSCP shows it",
    },
    "fp_openssh": {
        "fr": "SFTP, clé {kind}, affichée par FileZilla, PuTTY et OpenSSH",
        "en": "SFTP, {kind} key, as FileZilla, PuTTY and OpenSSH show it",
    },
    "fp_tls": {
        "fr": "FTPS (certificat SHA-256), affichée par WinSCP et FileZilla",
        "en": "FTPS (SHA-256 certificate), as WinSCP and FileZilla show it",
    },
    "fp_tls_upper": {
        "fr": "FTPS, la même en majuscules (OpenSSL)",
        "en": "FTPS, the same in capitals (OpenSSL)",
    },
    "fp_one": {
        "fr": "Votre logiciel n'en montre qu'une : il suffit qu'elle figure ici.",
        "en": "Your program shows only one of these: it is enough that it appears here.",
    },
    "s_winscp": {"fr": "3. Avec WinSCP (SFTP)", "en": "3. With WinSCP (SFTP)"},
    "winscp_steps": {
        "fr": "Ouvrez WinSCP : la fenêtre « Connexion » s'affiche.\n"
        "Protocole de fichier : choisissez « SFTP ».\n"
        "Nom d'hôte : {host}. Numéro de port : {sftp_port}.\n"
        "Nom d'utilisateur : {account}. Mot de passe : le vôtre.\n"
        "Enregistrez ces réglages pour la prochaine fois (bouton « Sauver »), puis cliquez "
        "sur « Connexion ».\n"
        "Vérifiez l'empreinte (point 2), puis cliquez sur « Accepter » (« Oui » dans les "
        "anciennes versions).\n"
        "Faites glisser votre fichier de sauvegarde de la partie gauche (votre ordinateur) "
        "vers la partie droite (le serveur). Aucun autre réglage n'est nécessaire.",
        "en": "Open WinSCP: the 'Login' window appears.\n"
        "File protocol: choose 'SFTP'.\n"
        "Host name: {host}. Port number: {sftp_port}.\n"
        "User name: {account}. Password: yours.\n"
        "Click 'Save' to keep these settings, then 'Login'.\n"
        "Check the fingerprint (section 2), then click 'Accept' ('Yes' in older versions).\n"
        "Drag your backup file from the left side (your computer) to the right side (the "
        "server). No other setting is needed.",
    },
    "s_filezilla": {"fr": "4. Avec FileZilla", "en": "4. With FileZilla"},
    "filezilla_steps": {
        "fr": "Menu « Fichier », puis « Gestionnaire de sites », puis « Nouveau site ».\n"
        "Protocole : « SFTP - SSH File Transfer Protocol ». Hôte : {host}. Port : "
        "{sftp_port}.\n"
        "Type d'authentification : « Normale ». Utilisateur : {account}. Mot de passe : le "
        "vôtre.\n"
        "Cliquez sur « Connexion ». Vérifiez l'empreinte (point 2), cochez « Toujours faire "
        "confiance à cet hôte », puis « OK ».\n"
        "Faites glisser votre fichier de la partie gauche vers la partie droite.",
        "en": "Menu 'File', then 'Site Manager', then 'New site'.\n"
        "Protocol: 'SFTP - SSH File Transfer Protocol'. Host: {host}. Port: {sftp_port}.\n"
        "Logon Type: 'Normal'. User: {account}. Password: yours.\n"
        "Click 'Connect'. Check the fingerprint (section 2), tick 'Always trust this host', "
        "then 'OK'.\n"
        "Drag your file from the left side to the right side.",
    },
    "filezilla_ftps": {
        "fr": "Si le SFTP est bloqué chez vous, utilisez le FTPS : même chose avec Protocole "
        "« FTP - Protocole de transfert de fichiers », Chiffrement « Connexion FTP explicite "
        "sur TLS requise », Port {ftps_port}. Vérifiez alors l'empreinte du certificat "
        "(point 2).",
        "en": "If SFTP is blocked on your side, use FTPS: the same with Protocol 'FTP - File "
        "Transfer Protocol', Encryption 'Require explicit FTP over TLS', Port {ftps_port}. "
        "Then check the certificate's fingerprint (section 2).",
    },
    "s_files": {"fr": "5. Ce que deviennent vos fichiers", "en": "5. What happens to your files"},
    "files_received": {
        "fr": "Un fichier est reçu quand le transfert se termine sans message d'erreur.",
        "en": "A file is received when the transfer ends without an error message.",
    },
    "files_interrupted": {
        "fr": "Si le transfert est coupé (réseau, ordinateur éteint), le morceau reçu est "
        "effacé : envoyez à nouveau le fichier en entier.",
        "en": "If the transfer is cut (network, computer switched off), the part received is "
        "erased: send the whole file again.",
    },
    "files_write_once": {
        "fr": "Un fichier reçu ne peut plus être modifié ni supprimé, par personne. Pour "
        "envoyer une version corrigée, donnez-lui un autre nom (par exemple avec la date).",
        "en": "A received file can no longer be changed or deleted, by anyone. To send a "
        "corrected version, give it another name (for example with the date).",
    },
    "files_keep": {
        "fr": "Vos fichiers sont conservés {keep} à compter de leur réception, puis détruits "
        "automatiquement.",
        "en": "Your files are kept {keep} from the day they are received, then destroyed "
        "automatically.",
    },
    "files_keep_unknown": {
        "fr": "Vos fichiers sont conservés puis détruits selon la convention qui nous lie.",
        "en": "Your files are kept, then destroyed, as our agreement says.",
    },
    "files_receipts": {
        "fr": "Pour chaque fichier reçu, un accusé de réception signé est disponible dans le "
        "dossier « .receipts ».",
        "en": "For each file received, a signed receipt is available in the '.receipts' folder.",
    },
    "files_traced": {
        "fr": "Chaque connexion et chaque opération sont enregistrées (qui, quoi, quand). "
        "Seul le personnel autorisé de l'agence a accès à vos sauvegardes.",
        "en": "Every connection and every operation is recorded (who, what, when). Only the "
        "agency's authorised staff can reach your backups.",
    },
    "s_help": {"fr": "6. Besoin d'aide ?", "en": "6. Need help?"},
    "help_none": {
        "fr": "Contactez l'agence qui vous a remis cette fiche.",
        "en": "Contact the agency that gave you this card.",
    },
}

_UNITS = {
    "fr": {
        Unit.DAYS: ("jour", "jours"),
        Unit.WORKING_DAYS: ("jour ouvré", "jours ouvrés"),
        Unit.MONTHS: ("mois", "mois"),
        Unit.YEARS: ("an", "ans"),
    },
    "en": {
        Unit.DAYS: ("day", "days"),
        Unit.WORKING_DAYS: ("working day", "working days"),
        Unit.MONTHS: ("month", "months"),
        Unit.YEARS: ("year", "years"),
    },
}


# French typography: a no-break space before ":" and inside « », a narrow one before
# ";", "?" and "!", so no line starts with ":" or ends with "«".
_FRENCH_SPACES = (
    (" :", "\u00a0:"),
    (" ;", "\u202f;"),
    (" ?", "\u202f?"),
    (" !", "\u202f!"),
    ("« ", "«\u00a0"),
    (" »", "\u00a0»"),
)


def typography(text: str, lang: str) -> str:
    """``text`` with French no-break spaces (``lang`` "fr"); other languages unchanged."""
    if lang != "fr":
        return text
    for plain, tied in _FRENCH_SPACES:
        text = text.replace(plain, tied)
    return text


def text(key: str, lang: str, **fields: object) -> str:
    return typography(TEXTS[key][lang].format(**fields), lang)


def duration(value: Duration, lang: str) -> str:
    """``3 months`` → ``3 mois`` / ``3 months``."""
    one, many = _UNITS[lang][value.unit]
    return f"{value.count} {one if value.count == 1 else many}"
