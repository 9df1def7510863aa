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
    "fp_winscp": {"fr": "SFTP, affichée par WinSCP", "en": "SFTP, as WinSCP shows it"},
    "fp_openssh": {
        "fr": "SFTP, affichée par FileZilla, PuTTY et OpenSSH",
        "en": "SFTP, as FileZilla, PuTTY and OpenSSH show it",
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


def text(key: str, lang: str, **fields: object) -> str:
    return TEXTS[key][lang].format(**fields)


def duration(value: Duration, lang: str) -> str:
    """``3 months`` → ``3 mois`` / ``3 months``."""
    one, many = _UNITS[lang][value.unit]
    return f"{value.count} {one if value.count == 1 else many}"
