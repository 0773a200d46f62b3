"""Run records: what ran, on which code, data and params, with which result.

Each record is stored in git (`mlops.pipeline.gitrecords`: one ref per record, pushed and fetched
with the code) and indexed in `.mlops/runs.db`, one row per run; JSON columns hold params, hashes,
metrics and stage results. The index filters, orders and limits in SQL: most recent first, by
kind, and `mlops runs list --where/--sort` queries (`RunStore.select`: the filter language of
`mlops.pipeline.query` compiled by `mlops.pipeline.querysql` to SQLite's JSON functions, so only
the matching rows are decoded; the rare row SQL cannot judge exactly is judged in Python). Every
read first indexes the records git has that the index lacks (CI's and teammates' after a `git
fetch`).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlops.errors import UsageError

DB = Path(".mlops/runs.db")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    outcome TEXT NOT NULL,
    exit_code INTEGER NOT NULL,
    git_commit TEXT,
    git_dirty INTEGER,
    git_branch TEXT,
    targets TEXT,
    stages TEXT,
    params TEXT,
    deps TEXT,
    outs TEXT,
    metrics TEXT,
    verdict TEXT,
    message TEXT,
    extra TEXT
);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started);
CREATE TABLE IF NOT EXISTS git_records (id TEXT PRIMARY KEY, oid TEXT NOT NULL);
"""

JSON_FIELDS = ("targets", "stages", "params", "deps", "outs", "metrics", "verdict", "extra")


@dataclass
class RunRecord:
    id: str
    kind: str  # run | exp | monitor | retrain ...
    started: float
    ended: float | None = None
    outcome: str = "running"  # ok | failed | validation_failed | gate_failed | dry
    exit_code: int = 0
    git_commit: str | None = None
    git_dirty: bool | None = None
    git_branch: str | None = None
    targets: list[str] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    deps: dict[str, str] = field(default_factory=dict)
    outs: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    verdict: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started


def new_run_id(now: float | None = None) -> str:
    """Sortable, readable and unique: `20261122-101502-3fa9`."""
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now or time.time())) + (
        "-" + secrets.token_hex(2)
    )


class RunStore:
    """The run records of one project."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / DB
        self._in_git: bool | None = None

    def _git(self) -> bool:
        """Whether records also go to (and come from) git here."""
        from mlops.pipeline import gitrecords

        if self._in_git is None:
            self._in_git = gitrecords.enabled() and gitrecords.is_repository(self.root)
            if self._in_git:  # from now on a plain `git fetch` brings teammates' records
                gitrecords.ensure_refspec(self.root)
        return self._in_git

    def _sync(self, con: sqlite3.Connection) -> int:
        """Index the records git has and the index lacks (new or changed refs only)."""
        from mlops.pipeline import gitrecords

        if not self._git():
            return 0
        known = dict(con.execute("SELECT id, oid FROM git_records"))
        added = 0
        for rid, oid, rec in gitrecords.read_new(self.root, known):
            if rec is not None:
                con.execute(*self._insert(RunRecord(**rec)))
                added += 1
            con.execute("INSERT OR REPLACE INTO git_records (id, oid) VALUES (?, ?)", (rid, oid))
        return added

    def sync(self) -> int:
        """Bring the index up to date with git's records; how many were added."""
        if not self._git():
            return 0
        with self._connect() as con:
            return self._sync(con)

    @contextmanager
    def _connect(self, create: bool = True) -> Iterator[sqlite3.Connection]:
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise UsageError(
                "no runs recorded yet in this project", "Run `mlops run` to record the first one."
            )
        con = sqlite3.connect(self.path, timeout=30)
        try:
            con.executescript(SCHEMA)
            yield con
            con.commit()
        finally:
            con.close()

    @staticmethod
    def _insert(rec: RunRecord) -> tuple[str, dict[str, Any]]:
        row = rec.to_dict()
        for key in JSON_FIELDS:
            row[key] = json.dumps(row[key], sort_keys=True, default=str)
        row["git_dirty"] = None if rec.git_dirty is None else int(rec.git_dirty)
        cols = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        return f"INSERT OR REPLACE INTO runs ({cols}) VALUES ({marks})", row  # noqa: S608

    def save(self, rec: RunRecord) -> None:
        """Index the record and store it in git (when the project is in a repository)."""
        from mlops.pipeline import gitrecords

        oid = gitrecords.publish(self.root, rec.to_dict()) if self._git() else None
        with self._connect() as con:
            con.execute(*self._insert(rec))
            if oid:
                con.execute(
                    "INSERT OR REPLACE INTO git_records (id, oid) VALUES (?, ?)", (rec.id, oid)
                )

    @staticmethod
    def _from_row(row: sqlite3.Row | dict[str, Any]) -> RunRecord:
        data = dict(row)
        for key in JSON_FIELDS:
            data[key] = json.loads(data[key]) if data[key] else None
            if data[key] is None:
                data[key] = [] if key in ("targets", "stages") else {}
        data["git_dirty"] = None if data["git_dirty"] is None else bool(data["git_dirty"])
        return RunRecord(**data)

    def select(
        self,
        where: str | None = None,
        sort: str | None = None,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """`mlops.pipeline.query.select(self.list(limit=None), where, sort, descending, limit)`,
        answered in SQL: the records matching `where`, ordered by `sort` (missing values last;
        else newest first), at most `limit`."""
        from mlops.pipeline import query, querysql

        node = query.parse(where) if where else None
        if sort:
            query.check_sort(sort)
        if not self.path.exists() and not (self._git() and self.sync()):
            return []
        cond = querysql.where(node) if node is not None else querysql.Compiled("1")
        order = querysql.order(sort, descending) if sort else None
        args = {**cond.args, **(order.args if order else {})}
        # the filter's answer per row: 1, 0, or NULL when Python must judge the row; the SQL
        # is built from the parse tree (fixed text), values and JSON paths are parameters
        rows = f"SELECT *, {cond.sql} AS _match FROM runs WHERE _match IS NOT 0"  # noqa: S608
        with self._connect() as con:
            self._sync(con)
            con.row_factory = sqlite3.Row
            unplaceable = f"SELECT 1 FROM ({rows}) WHERE {order.unknown} LIMIT 1" if order else ""  # noqa: S608
            in_sql = order is None or not con.execute(unplaceable, args).fetchone()
            by = order.sql if order is not None and in_sql else "started DESC, id DESC"
            out: list[RunRecord] = []
            for row in con.execute(f"{rows} ORDER BY {by}", args):
                data = dict(row)
                verdict = data.pop("_match")
                rec = self._from_row(data)
                if verdict is None and node and not query.evaluate(node, query.record_row(rec)):
                    continue
                out.append(rec)
                if in_sql and limit and len(out) == limit:
                    break
        if not in_sql:  # a sort value SQL cannot place (an object, unreadable JSON)
            return query.select(out, None, sort, descending, limit)
        return out

    def list(self, limit: int | None = 20, kind: str | None = None) -> list[RunRecord]:
        """Most recent first."""
        if not self.path.exists() and not (self._git() and self.sync()):
            return []
        sql = "SELECT * FROM runs"
        args: list[Any] = []
        if kind:
            sql += " WHERE kind = ?"
            args.append(kind)
        sql += " ORDER BY started DESC, id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        with self._connect() as con:
            self._sync(con)
            con.row_factory = sqlite3.Row
            return [self._from_row(r) for r in con.execute(sql, args)]

    def get(self, run_id: str) -> RunRecord:
        """A run by id or unique id prefix; `latest` is the most recent."""
        if not self.path.exists() and self._git():
            self.sync()
        with self._connect(create=False) as con:
            self._sync(con)
            con.row_factory = sqlite3.Row
            if run_id == "latest":
                rows = list(con.execute("SELECT * FROM runs ORDER BY started DESC LIMIT 1"))
            else:
                rows = list(
                    con.execute("SELECT * FROM runs WHERE id LIKE ? || '%' LIMIT 2", (run_id,))
                )
        if not rows:
            raise UsageError(f"no run {run_id!r}", "See `mlops runs list` for run ids.")
        if len(rows) > 1:
            raise UsageError(f"run id prefix {run_id!r} is ambiguous", "Give more characters.")
        return self._from_row(rows[0])
