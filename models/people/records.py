"""The person's file as a chain of records: append-only, each carrying a hash over its content
and the previous record's hash, so that an edit, a deletion or an insertion anywhere in a
person's history is found by `verify` (`safetybot verify-records`). The same guarantee people ask
of "上链存证", without a blockchain: nobody edits history silently.

A chain is one holder's: a person, or a contractor company (`contractor:ID`). Appends to one
chain are serialised (an advisory lock per chain on PostgreSQL; SQLite has one writer at a time),
and (holder, seq) is unique as a second guard.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from models import atomic
from models.sql import insert_many

PAGE = 5000     # records read at a time by `verify`


class RecordKind(StrEnum):
    PROFILE = "profile"            # post, hire date, contractor set or changed
    CERTIFICATE = "certificate"    # registered, renewed or reviewed
    LAPSED = "lapsed"              # a certificate expired or missed its review
    TRAINING = "training"          # a course with its hours and score
    CHECK = "check"                # a pre-work check's answer for this person
    VIOLATION = "violation"        # 违章, recorded by a supervisor or safety manager
    SUSPENSION = "suspension"      # 停岗 or 复岗
    BLACKLIST = "blacklist"        # 列入 or 移出 the blacklist
    ADMISSION = "admission"        # a contractor worker's 准入 asked, granted or refused
    PRACTICAL = "practical"        # 实操抽查 after a course: 合格 or 不合格

    @property
    def label(self) -> str:
        return {"profile": "岗位", "certificate": "证书", "lapsed": "证书失效",
                "training": "培训", "check": "开工校验", "violation": "违章",
                "suspension": "停岗", "blacklist": "黑名单", "admission": "准入",
                "practical": "实操抽查"}[self.value]


class PersonRecord(Model):
    id = fields.BigIntField(primary_key=True)
    holder = fields.CharField(max_length=80)     # a person's id, or contractor:ID
    seq = fields.IntField()                      # 1, 2, … within the holder's chain
    kind = fields.CharEnumField(RecordKind, max_length=12)
    at = fields.DatetimeField()
    actor = fields.CharField(max_length=64)
    data: dict[str, Any] = fields.JSONField(default=dict)  # type: ignore[assignment]
    prev = fields.CharField(max_length=64)       # the previous record's digest; "" for the first
    digest = fields.CharField(max_length=64)

    class Meta:
        table = "person_record"
        unique_together = (("holder", "seq"),)

    async def save(self, *args: Any, **kwargs: Any) -> None:
        """Records are written once and never changed."""
        if self._saved_in_db:
            raise PermissionError("person records are append-only")
        await super().save(*args, **kwargs)


def contractor_holder(contractor_id: str) -> str:
    return f"contractor:{contractor_id}"


def digest_of(holder: str, seq: int, kind: str, at: datetime, actor: str,
              data: dict[str, Any], prev: str) -> str:
    """SHA-256 over the record's content in one canonical form (keys sorted, the time in UTC
    to the second), chained to the previous record by `prev`."""
    body = json.dumps([holder, seq, kind, at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                       actor, data, prev], ensure_ascii=False, sort_keys=True,
                      separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class NewRecord:
    holder: str
    kind: RecordKind
    data: dict[str, Any]


async def append_many(records: Sequence[NewRecord], actor: str, at: datetime) -> None:
    """Append each record to its holder's chain, in the caller's transaction (or one of its
    own): a pre-work check of 20 people is four statements, not sixty."""
    if not records:
        return
    at = at.replace(microsecond=0)
    data = [json.loads(json.dumps(r.data, ensure_ascii=False, default=str)) for r in records]
    holders = sorted({r.holder for r in records})
    async with atomic():
        db = PersonRecord._meta.db
        if db.capabilities.dialect == "postgres":
            await db.execute_query(
                "SELECT pg_advisory_xact_lock(hashtextextended(h, 1107)) "
                "FROM unnest($1::text[]) AS h ORDER BY h", [holders])
        heads = await _heads(holders)
        rows = []
        for record, content in zip(records, data, strict=True):
            seq, prev = heads.get(record.holder, (0, ""))
            seq += 1
            digest = digest_of(record.holder, seq, record.kind.value, at, actor, content, prev)
            heads[record.holder] = (seq, digest)
            rows.append({"holder": record.holder, "seq": seq, "kind": record.kind.value,
                         "at": at, "actor": actor, "data": content, "prev": prev,
                         "digest": digest})
        await insert_many(PersonRecord, rows)


async def _heads(holders: list[str]) -> dict[str, tuple[int, str]]:
    """Each chain's last (seq, digest)."""
    db = PersonRecord._meta.db
    if db.capabilities.dialect == "postgres":
        sql = ('SELECT DISTINCT ON ("holder") "holder", "seq", "digest" FROM "person_record" '
               'WHERE "holder" = ANY($1::text[]) ORDER BY "holder", "seq" DESC')
        param: object = holders
    else:
        sql = ('SELECT "holder", MAX("seq") AS "seq", "digest" FROM "person_record" WHERE '
               '"holder" IN (SELECT "value" FROM json_each(?)) GROUP BY "holder"')
        param = json.dumps(holders)
    return {str(r["holder"]): (int(r["seq"]), str(r["digest"]))
            for r in await db.execute_query_dict(sql, [param])}


async def records_of(holder: str, *kinds: RecordKind) -> list[PersonRecord]:
    query = PersonRecord.filter(holder=holder)
    if kinds:
        query = query.filter(kind__in=[k.value for k in kinds])
    return list(await query.order_by("seq"))


@dataclass(frozen=True)
class Broken:
    holder: str
    seq: int
    record_id: int | None
    problem: str

    def __str__(self) -> str:
        where = f"record #{self.seq}" + (f" (id {self.record_id})" if self.record_id else "")
        return f"{self.holder}: {where}: {self.problem}"


async def verify() -> tuple[int, int, list[Broken]]:
    """Walk every chain: (chains, records, the first broken link of each broken chain)."""
    chains = count = 0
    broken: list[Broken] = []
    holder, seq, prev, bad = "", 0, "", False
    async for r in _every_record():
        count += 1
        if r.holder != holder:
            chains += 1
            holder, seq, prev, bad = r.holder, 0, "", False
        seq += 1
        if bad:
            continue
        problem = ""
        if r.seq != seq:
            problem = f"expected record #{seq} here, found #{r.seq}: a record is missing"
        elif r.prev != prev:
            problem = ("its link to the record before does not match: a record was removed "
                       "or replaced")
        elif digest_of(r.holder, r.seq, r.kind.value, r.at, r.actor, r.data, r.prev) != r.digest:
            problem = "its content does not match its hash: the record was edited"
        if problem:
            broken.append(Broken(r.holder, r.seq, r.id, problem))
            bad = True
        prev, seq = r.digest, r.seq
    return chains, count, broken


async def _every_record() -> AsyncIterator[PersonRecord]:
    after: tuple[str, int] = ("", 0)
    while True:
        page = list(await PersonRecord.filter(
            holder__gte=after[0]).exclude(holder=after[0], seq__lte=after[1])
            .order_by("holder", "seq").limit(PAGE))
        if not page:
            return
        for record in page:
            yield record
        after = (page[-1].holder, page[-1].seq)
