"""Folder discovery and classification.

One LIST gives every folder; everything else is decided locally:

* the role (inbox, sent, drafts...) comes from the RFC 6154 SPECIAL-USE flags
  and, for servers without them, from the folder's own name in the common
  languages and providers' layouts;
* a folder can be synced only if it holds mail: ``\\Noselect`` and
  ``\\NonExistent`` containers and the groupware folders that Exchange and
  others expose over IMAP (Calendar, Contacts, Tasks...) are refused with a
  reason, because selecting or fetching them breaks naive syncs.

Names arrive already decoded from modified UTF-7 by imapclient.
"""

import dataclasses

INBOX = "inbox"
SENT = "sent"
DRAFTS = "drafts"
TRASH = "trash"
JUNK = "junk"
ARCHIVE = "archive"
ALL = "all"
FLAGGED = "flagged"
OTHER = "other"
ROLES = (INBOX, SENT, DRAFTS, TRASH, JUNK, ARCHIVE, ALL, FLAGGED, OTHER)

#: Roles selected for sync when a mailbox is first connected.
SUGGESTED_ROLES = (INBOX, SENT)

SPECIAL_USE_ROLES = {
    "\\sent": SENT,
    "\\drafts": DRAFTS,
    "\\trash": TRASH,
    "\\junk": JUNK,
    "\\archive": ARCHIVE,
    "\\all": ALL,
    "\\flagged": FLAGGED,
}

NOT_SELECTABLE_FLAGS = ("\\noselect", "\\nonexistent")

# Localized names, compared case-insensitively on the last path segment and,
# for provider layouts such as "[Gmail]/Sent Mail", on the whole path.
ROLE_NAMES = {
    SENT: (
        "sent", "sent items", "sent messages", "sent mail", "sent-mail", "sent email", "[gmail]/sent mail",
        "[google mail]/sent mail", "inbox.sent", "inbox/sent",
        "gesendet", "gesendete objekte", "gesendete elemente", "gesendete nachrichten",
        "éléments envoyés", "elements envoyes", "messages envoyés", "envoyés", "envoyé",
        "posta inviata", "inviata", "elementi inviati", "inviati",
        "enviados", "elementos enviados", "mensajes enviados", "itens enviados",
        "verzonden", "verzonden items", "verzonden berichten",
        "skickat", "skickade objekt", "sendt", "sendte elementer", "sendt post", "lähetetyt", "lähetetyt kohteet",
        "wysłane", "elementy wysłane", "odeslané", "odeslaná pošta", "elküldött elemek", "trimise",
        "отправленные", "отправленные элементы", "надіслані", "gönderilmiş öğeler", "gönderilenler",
        "αποσταλμένα", "送信済みアイテム", "送信済み", "已发送", "已发送邮件", "寄件備份", "보낸 편지함",
    ),
    DRAFTS: (
        "drafts", "draft", "[gmail]/drafts", "entwürfe", "brouillons", "bozze", "borradores", "rascunhos",
        "concepten", "utkast", "kladder", "luonnokset", "kopie robocze", "koncepty", "черновики", "下書き", "草稿",
    ),
    TRASH: (
        "trash", "deleted items", "deleted messages", "bin", "[gmail]/trash", "[gmail]/bin", "papierkorb",
        "gelöschte elemente", "gelöschte objekte", "corbeille", "éléments supprimés", "cestino",
        "posta eliminata", "elementi eliminati", "papelera", "elementos eliminados", "lixeira", "lixo",
        "prullenbak", "verwijderde items", "papperskorgen", "borttagna objekt", "kosz", "удаленные",
        "удаленные элементы", "корзина", "ゴミ箱", "已删除", "已删除邮件",
    ),
    JUNK: (
        "junk", "junk e-mail", "junk email", "junk mail", "spam", "[gmail]/spam", "bulk mail", "spamverdacht",
        "junk-e-mail", "courrier indésirable", "courriers indésirables", "indésirables", "posta indesiderata",
        "correo no deseado", "lixo eletrônico", "ongewenste e-mail", "skräppost", "спам", "нежелательная почта",
        "迷惑メール", "垃圾邮件",
    ),
    ARCHIVE: ("archive", "archives", "archiv", "archivio", "archivo", "arquivo", "archief", "arkiv", "архив"),
    ALL: ("[gmail]/all mail", "[google mail]/all mail", "all mail", "alle nachrichten", "tous les messages"),
    FLAGGED: ("[gmail]/starred", "starred", "flagged"),
}

# Groupware and housekeeping folders that are not mail. A folder below one of
# them (Calendar/Birthdays, Sync Issues/Conflicts) is not mail either.
NON_MAIL_NAMES = {
    "calendar": (
        "calendar", "kalender", "calendrier", "calendario", "agenda", "kalenteri", "kalendarz", "календарь",
        "予定表", "日历", "birthdays", "united states holidays",
    ),
    "contacts": (
        "contacts", "kontakte", "contatti", "contactos", "contatos", "contactpersonen", "kontakter",
        "yhteystiedot", "kontakty", "контакты", "連絡先", "联系人", "recipient cache", "suggested contacts",
        "gal contacts", "organizational contacts", "companies", "peoplecentricconversation buddies",
    ),
    "tasks": ("tasks", "aufgaben", "tâches", "taches", "attività", "tareas", "tarefas", "taken", "uppgifter",
              "tehtävät", "zadania", "úkoly", "задачи", "タスク", "任务"),
    "notes": ("notes", "notizen", "note", "notas", "notities", "anteckningar", "muistiinpanot", "notatki",
              "poznámky", "заметки", "メモ", "便笺"),
    "journal": ("journal", "diario", "diário", "logboek", "dagbok", "päiväkirja", "dziennik", "deník",
                "дневник", "履歴", "日记"),
    "sync issues": (
        "sync issues", "conflicts", "local failures", "server failures", "synchronisierungsprobleme",
        "konflikte", "lokale fehler", "serverfehler", "problèmes de synchronisation", "conflits",
        "problemi di sincronizzazione", "problemas de sincronización", "synchronisatieproblemen",
        "проблемы синхронизации",
    ),
    "outbox": ("outbox", "postausgang", "boîte d'envoi", "boite d'envoi", "posta in uscita", "bandeja de salida",
               "caixa de saída", "postvak uit", "utkorgen", "исходящие", "送信トレイ", "发件箱"),
    "rss feeds": ("rss feeds", "rss-feeds", "rss subscriptions", "flux rss", "feed rss", "fuentes rss",
                  "rss-абонементы", "rss"),
    "conversation history": ("conversation history", "unterhaltungsverlauf", "historique des conversations",
                             "cronologia conversazioni", "historial de conversaciones"),
    "other groupware": ("social activity notifications", "yammer root", "externalcontacts", "files",
                        "quick step settings", "working set", "clutter"),
}

_ROLE_BY_NAME = {name: role for role, names in ROLE_NAMES.items() for name in names}
_KIND_BY_NAME = {name: kind for kind, names in NON_MAIL_NAMES.items() for name in names}
#: What the user is told each kind of folder holds instead of mail.
_WHAT_IT_HOLDS = {
    "calendar": "it holds calendar events",
    "contacts": "it holds contacts",
    "tasks": "it holds tasks",
    "notes": "it holds notes",
    "journal": "it holds journal entries",
    "sync issues": "it holds the mail client's sync reports",
    "outbox": "it holds mail waiting to be sent by a mail client",
    "rss feeds": "it holds news feeds",
    "conversation history": "it holds chat history",
    "other groupware": "it holds groupware data",
}


@dataclasses.dataclass(frozen=True)
class Folder:
    """A folder as listed by the server, with what we concluded about it."""

    name: str
    delimiter: str
    flags: tuple
    role: str
    is_selectable: bool
    #: Why the folder cannot be synced, for the user; empty when it can.
    skip_reason: str = ""

    @property
    def parent_name(self):
        if not self.delimiter or self.delimiter not in self.name:
            return ""
        return self.name.rsplit(self.delimiter, 1)[0]

    @property
    def leaf_name(self):
        return self.name.rsplit(self.delimiter, 1)[-1] if self.delimiter else self.name



def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def classify(name, delimiter, flags):
    """Build a :class:`Folder` from one LIST entry."""
    name, delimiter = _text(name), _text(delimiter) or ""
    flags = tuple(_text(flag) for flag in flags)
    lowered_flags = {flag.lower() for flag in flags}
    segments = [segment.strip().lower() for segment in (name.split(delimiter) if delimiter else [name])]

    role = OTHER
    if name.upper() == "INBOX":
        role = INBOX
    else:
        role = next((SPECIAL_USE_ROLES[flag] for flag in sorted(lowered_flags) if flag in SPECIAL_USE_ROLES), None) \
            or _ROLE_BY_NAME.get(name.lower()) or _ROLE_BY_NAME.get(segments[-1]) or OTHER

    skip_reason = ""
    if lowered_flags & set(NOT_SELECTABLE_FLAGS):
        skip_reason = "Container only: the server says this folder holds no messages (\\Noselect)."
    elif role == OTHER:
        kind = next((_KIND_BY_NAME[segment] for segment in segments if segment in _KIND_BY_NAME), None)
        if kind:
            skip_reason = "Not an email folder: %s." % _WHAT_IT_HOLDS[kind]
    return Folder(name=name, delimiter=delimiter, flags=flags, role=role, is_selectable=not skip_reason,
                  skip_reason=skip_reason)


def list_folders(client):
    """List and classify every folder of the account, in server order."""
    return [classify(name, delimiter, flags) for flags, delimiter, name in client.list_folders()]


def find_role(folders, role):
    """The selectable folder with ``role``; by SPECIAL-USE first, then by name."""
    names = ROLE_NAMES.get(role, ())

    def rank(folder):
        has_special_use = any(flag.lower() in SPECIAL_USE_ROLES for flag in folder.flags)
        lowered = folder.name.lower()
        # Among name matches, the more common name wins ("Sent Items" before a
        # localized leftover such as "Gesendete Objekte").
        name_rank = names.index(lowered) if lowered in names else len(names)
        return (not has_special_use, name_rank, folder.name)

    candidates = [folder for folder in folders if folder.role == role and folder.is_selectable]
    return min(candidates, key=rank) if candidates else None


def suggested_folders(folders):
    """The folders to select when a mailbox is first connected: the inbox and the one Sent folder."""
    return [folder for folder in (find_role(folders, role) for role in SUGGESTED_ROLES) if folder]
