"""A member's ``/.receipts/``: a read-only virtual folder of signed receipts, from the catalog.

``intake.services.files`` sends every request inside ``/.receipts/`` here (after
``intake.core.authz`` has refused anything but list, stat and read); nothing here touches
``data/``.

Rules:
- ``/.receipts/<path>.receipt.json`` exists for each file the member uploaded that is
  still held (catalog state received, forwarded or altered, area ``member``, source
  ``upload``), under the file's current path. Files an operator put on disk (source
  ``scan``), destroyed files (they have a destruction certificate instead) and uploads
  that never completed have none. Folders exist only where a receipt lies below.
- A receipt's bytes are ``documents.render`` of the signed ``documents.receipt_body``
  of the entry: fixed by the catalog (Ed25519 is deterministic), so listing, stat and
  read agree and a second download gives the same bytes. Signed receipts are cached by
  everything they state.
- Only the member's own entries are ever looked up (the account comes from the session,
  never from the path): one member never sees another's receipts.
- No request reads the member's whole history: a receipt (stat, read) is one catalog
  lookup by path (``Catalog.receipt``, an index), a folder (list, stat) reads only the
  held entries below it (``receipts_below``, ``receipts_time``); destroyed entries and
  files outside the folder are never read.
- Receipts are signed by the current audit key, reloaded when it changes (``intake keys
  rotate-audit`` from another process); an unreadable key is an ``IntakeError`` (the
  client sees a failure), never a receipt signed otherwise.
"""

from __future__ import annotations

import stat
import threading
from collections import OrderedDict
from typing import Any

from intake.adapters.audit import signing
from intake.adapters.audit.chain import KeySource
from intake.adapters.audit.signing import Signer
from intake.adapters.catalog.catalog import Catalog, Entry
from intake.adapters.storage import EntryStat
from intake.core.config import Config
from intake.core.errors import NotFound
from intake.core.paths import VPath
from intake.services.documents import signed as documents

FOLDER = ".receipts"
SUFFIX = ".receipt.json"
FILE_MODE = stat.S_IFREG | 0o444
DIR_MODE = stat.S_IFDIR | 0o555
CACHE_SIZE = 4096


def receipt_path(path: str) -> VPath:
    """``/2026/base.zip`` -> ``("2026", "base.zip.receipt.json")`` (below ``/.receipts``)."""
    parts = tuple(p for p in path.split("/") if p)
    return (*parts[:-1], parts[-1] + SUFFIX)


def entry_path(rel: VPath) -> str | None:
    """``("2026", "base.zip.receipt.json")`` -> ``/2026/base.zip``; None if no receipt's."""
    if not rel or not rel[-1].endswith(SUFFIX) or rel[-1] == SUFFIX:
        return None
    return "/" + "/".join((*rel[:-1], rel[-1][: -len(SUFFIX)]))


def folder_path(rel: VPath) -> str:
    """``("2026",)`` -> ``/2026``: the folder of the member's files a receipts folder mirrors."""
    return "/" + "/".join(rel)


class Receipts:
    """The receipts of every member of one instance; thread-safe."""

    def __init__(self, cfg: Config, catalog: Catalog) -> None:
        self._cfg = cfg
        self._catalog = catalog
        self._keys = KeySource(cfg.keys_dir / signing.AUDIT_KEY_FILE)
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()

    # -- what exists ---------------------------------------------------------------

    def _entry(self, account: str, rel: VPath) -> Entry | None:
        """The held entry whose receipt is ``rel`` (one index lookup), or None."""
        path = entry_path(rel)
        return None if path is None else self._catalog.receipt(account, path)

    def _signer_now(self) -> Signer:
        with self._lock:
            signer = self._keys.current()
            if signer is None:  # an older instance: make its key now
                signer = documents.audit_signer(self._cfg)
            return signer

    def render(self, entry: Entry) -> bytes:
        """The receipt of ``entry``, as served (signed by the current key)."""
        body = documents.receipt_body(self._cfg, entry)
        signer = self._signer_now()
        key = (signer.key_id, *sorted(body.items()))
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        data = documents.render(signing.sign_document(body, signer))
        with self._lock:
            self._cache[key] = data
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return data

    # -- the folder --------------------------------------------------------------

    def _file(self, name: str, entry: Entry) -> EntryStat:
        size = len(self.render(entry))
        return EntryStat(name, False, size, entry.received_at.timestamp(), FILE_MODE)

    def list_dir(self, account: str, rel: VPath) -> list[EntryStat]:
        depth = len(rel)
        below = self._catalog.receipts_below(account, folder_path(rel))
        if rel and not below:
            raise NotFound("no such folder")
        files: dict[str, EntryStat] = {}
        latest: dict[str, Entry] = {}
        folders: dict[str, float] = {}
        for entry in below:  # by path, then oldest first: the latest at a path wins
            path = receipt_path(entry.path)
            if path[:depth] != rel or len(path) <= depth:
                continue
            name = path[depth]
            if len(path) == depth + 1:
                latest[name] = entry
            else:
                when = entry.received_at.timestamp()
                folders[name] = max(folders.get(name, when), when)
        for name, entry in latest.items():
            files[name] = self._file(name, entry)
        entries = [EntryStat(n, True, 0, t, DIR_MODE) for n, t in folders.items()]
        return sorted([*entries, *files.values()], key=lambda e: e.name)

    def stat(self, account: str, rel: VPath) -> EntryStat:
        if not rel:
            return EntryStat(FOLDER, True, 0, 0.0, DIR_MODE)
        entry = self._entry(account, rel)
        if entry is not None:
            return self._file(rel[-1], entry)
        when = self._catalog.receipts_time(account, folder_path(rel))
        if when is None:
            raise NotFound("no such receipt")
        return EntryStat(rel[-1], True, 0, when.timestamp(), DIR_MODE)

    def read(self, account: str, rel: VPath) -> bytes:
        entry = self._entry(account, rel)
        if entry is None:
            raise NotFound("no such receipt")
        return self.render(entry)
