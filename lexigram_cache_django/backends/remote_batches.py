"""Batch entry reads of a networked backend: entries with their metadata, in one read.

``get_many`` returns values; callers that must know an entry's tags and lifetime (the
tiered cache filling L1 from a batch, ``cache_page`` reading a page with its header
list) read entries here, with the same tag check and the same single round trip when
the keys' tag hints are known.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..exceptions import CacheServerError
from ..protocols import Entry
from ..tags import is_stale, record_version, tag_keys_of
from .remote_entries import RemoteEntries


class EntryBatches(RemoteEntries):
    """``get_entry_many``/``get_entry_pair`` (made keys) and their async twins."""

    def get_entry_many(self, made: Sequence[str]) -> dict[str, Entry]:
        """Live, fresh entries of made keys: one read when their tag hints are known."""
        made = list(made)
        try:
            hinted = self._tag_hints.union(made)
            replies = self._client.get_many(made + hinted if hinted else made, bool(hinted))
            entries, tagged, records = self._entries(made, hinted, replies)
            missing = self._batch_records(tagged, records) if tagged else []
            if missing:
                records.update(self._records(missing))
        except CacheServerError as exc:
            return self._failed("get_many", exc, {})
        return self._fresh(made, entries, tagged, records)

    async def aget_entry_many(self, made: Sequence[str]) -> dict[str, Entry]:
        made = list(made)
        try:
            hinted = self._tag_hints.union(made)
            replies = await self._client.aget_many(made + hinted if hinted else made, bool(hinted))
            entries, tagged, records = self._entries(made, hinted, replies)
            missing = self._batch_records(tagged, records) if tagged else []
            if missing:
                records.update(await self._arecords(missing))
        except CacheServerError as exc:
            return self._failed("get_many", exc, {})
        return self._fresh(made, entries, tagged, records)

    def _entries(
        self, made: list[str], hinted: list[str], replies: list[bytes | None]
    ) -> tuple[dict[str, Entry], list[tuple[str, str, Any]], dict[str, int | None]]:
        entries: dict[str, Entry] = {}
        tagged: list[tuple[str, str, Any]] = []
        for key, data in zip(made, replies):
            entry = self._live(key, data)
            if entry is not None:
                entries[key] = entry
                if entry[1] is not None and entry[1].tags:
                    tagged.append((key, key, entry[1]))
        return entries, tagged, self._split(made, hinted, replies)

    def _fresh(
        self,
        made: list[str],
        entries: dict[str, Entry],
        tagged: list[tuple[str, str, Any]],
        records: dict[str, int | None],
    ) -> dict[str, Entry]:
        for key, _, meta in tagged:
            if is_stale(meta.tags, records):
                del entries[key]
                self._stats.stale_by_tag += 1
        self.count_batch(made, len(entries), made, entries)  # signals carry made keys here
        return entries

    def get_entry_pair(self, key: str, other: str) -> tuple[Entry | None, Entry | None]:
        """Two entries (made keys) and ``key``'s hinted tag records in one read: a page
        and its learned header list (``cache_page``'s one-round-trip hit). A tag record
        the hint did not cover (a first read, changed tags) costs one more read."""
        try:
            hint = self._tag_hints.get(key)
            data, side, *versions = self._client.get_many((key, other, *hint), bool(hint))
            pair, records, missing = self._pair(key, other, data, side, hint, versions)
            if missing:
                records.update(self._records(missing))
        except CacheServerError as exc:
            return self._failed("get", exc, (None, None))
        return self._checked_pair(key, other, pair, records)

    async def aget_entry_pair(self, key: str, other: str) -> tuple[Entry | None, Entry | None]:
        try:
            hint = self._tag_hints.get(key)
            data, side, *versions = await self._client.aget_many((key, other, *hint), bool(hint))
            pair, records, missing = self._pair(key, other, data, side, hint, versions)
            if missing:
                records.update(await self._arecords(missing))
        except CacheServerError as exc:
            return self._failed("get", exc, (None, None))
        return self._checked_pair(key, other, pair, records)

    def _checked_pair(
        self,
        key: str,
        other: str,
        pair: tuple[Entry | None, Entry | None],
        records: dict[str, int | None],
    ) -> tuple[Entry | None, Entry | None]:
        """Drop what its tags made stale; count both reads as one batch of two."""
        checked = []
        for entry in pair:
            meta = None if entry is None else entry[1]
            if meta is not None and meta.tags and is_stale(meta.tags, records):
                self._stats.stale_by_tag += 1
                entry = None
            checked.append(entry)
        first, second = checked
        found = {k: e for k, e in ((key, first), (other, second)) if e is not None}
        self.count_batch((key, other), len(found), (key, other), found)
        return first, second

    def _pair(
        self,
        key: str,
        other: str,
        data: bytes | None,
        side: bytes | None,
        hint: tuple[str, ...],
        versions: Sequence[bytes | None],
    ) -> tuple[tuple[Entry | None, Entry | None], dict[str, int | None], list[str]]:
        """The two live entries, the tag records read with them, the records still needed."""
        records: dict[str, int | None] = dict(zip(hint, map(record_version, versions)))
        entry, second = self._live(key, data), self._live(other, side)
        missing = self._tags_to_fetch(key, entry, hint, records)
        if second is not None and second[1] is not None and second[1].tags:
            missing += [
                k for k in tag_keys_of((second[1],)) if k not in records and k not in missing
            ]
        return (entry, second), records, missing
