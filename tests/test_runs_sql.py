"""`mlops runs list --where/--sort` answered in SQLite (mlops.pipeline.querysql) gives exactly what
the Python filter (mlops.pipeline.query.select) gives over every record, on a real record store
holding awkward records: flattened and nested metric names, NaN (JSON SQLite cannot parse),
bools, nulls, lists, objects, non-ASCII text, big integers, runs still running."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import pytest

from mlops.errors import UsageError
from mlops.pipeline import query, querysql
from mlops.pipeline.records import RunRecord, RunStore

KINDS = ["run", "exp", "deploy", "monitor"]
TEXTS = ["ok", "OK", "main", "feature/x", "Ünïcode", "", "0.9", "5", "True", "None"]


def _value(rng: random.Random, awkward: bool = True) -> object:
    pick = rng.randrange(12 if awkward else 6)
    return [
        lambda: rng.random(),
        lambda: rng.randrange(-3, 10),
        lambda: round(rng.random(), 2),
        lambda: rng.choice([True, False]),
        lambda: None,
        lambda: rng.choice(TEXTS),
        lambda: [1, 2] if rng.random() < 0.5 else [],
        lambda: {"a": 1} if rng.random() < 0.5 else {},
        lambda: float("nan"),
        lambda: 10**20,
        lambda: 0.9,
        lambda: 5,
    ][pick]()


def _record(i: int, rng: random.Random, awkward: bool = True) -> RunRecord:
    metrics: dict = {}
    for name in ("accuracy", "rmse", "f1.macro"):
        if rng.random() < 0.8:
            metrics[name] = _value(rng, awkward) if rng.random() < 0.3 else rng.random()
    if rng.random() < 0.3:
        metrics["f1"] = {"macro": rng.random(), "micro": _value(rng, awkward)}
    params = {"train": {"C": _value(rng, awkward), "penalty": rng.choice(TEXTS)}}
    if awkward and rng.random() < 0.2:
        params["train"] = rng.choice([[1], "flat", None])
    started = 1_700_000_000 + i * 10 + rng.random()
    return RunRecord(
        id=f"2026{i:05d}-{rng.randrange(16**4):04x}",
        kind=rng.choice(KINDS),
        started=started,
        ended=None if rng.random() < 0.1 else started + rng.choice([2, 2.5, 60, 0.25]),
        outcome=rng.choice(["ok", "failed", "gate_failed", "running"]),
        exit_code=rng.choice([0, 1, 4]),
        git_commit=rng.choice([None, "abc1234", "DEADBEEF"]),
        git_dirty=rng.choice([None, True, False]),
        git_branch=rng.choice([None, *TEXTS]),
        targets=rng.choice([[], ["penguins"], ["a", "b"]]),
        metrics=metrics,
        params=params,
        message=rng.choice(TEXTS),
        extra={"env": rng.choice(["staging", "production", None]), "n": _value(rng, awkward)},
    )


_EVERYTHING: dict[Path, list[RunRecord]] = {}


def _store(root: Path, awkward: bool) -> RunStore:
    rng = random.Random(18)
    store = RunStore(root)  # not a git repository: the index only
    records = [_record(i, rng, awkward) for i in range(300 if awkward else 150)]
    rng.shuffle(records)
    with store._connect() as con:  # what RunStore.save does without git, in one transaction
        for r in records:
            con.execute(*store._insert(r))
    _EVERYTHING[store.path] = store.list(limit=None)  # what the Python filter reads
    return store


def _all(store: RunStore) -> list[RunRecord]:
    return _EVERYTHING[store.path]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> RunStore:
    return _store(tmp_path_factory.mktemp("runs"), awkward=True)


@pytest.fixture(scope="module")
def plain_store(tmp_path_factory: pytest.TempPathFactory) -> RunStore:
    """Numbers, bools, nulls and text only: every sort is done in SQL."""
    return _store(tmp_path_factory.mktemp("plain"), awkward=False)


WHERE = [
    "metrics.accuracy > 0.5",
    "metrics.accuracy >= 0.9 and params.train.C < 1",
    "metrics.accuracy < 0.3 or params.train.C >= 5",
    "not (metrics.accuracy > 0.5)",
    "metrics.f1.macro <= 0.5",
    "metrics.f1.micro == 5",
    "metrics.f1 == 0.9",
    "metrics.f1",
    "not metrics.f1.macro",
    "kind == exp && not (params.train.C > 1)",
    "kind = 'deploy' and extra.env == staging",
    "extra.env != production",
    "extra.env == null",
    "extra.n == true",
    "extra.n == 1",
    "extra.n == '5'",
    "extra.n == 0.9",
    "extra.n ~ 9",
    "extra.n",
    "params.train.C == '0.9'",
    "params.train.C != 5",
    "params.train.C ~ true",
    "params.train",
    "params.train == flat",
    "params.train.penalty ~ o",
    "params.train.penalty > main",
    "params.train.penalty ~ 'ÜN'",
    "message ~ ok",
    "message == ''",
    "git_branch ~ feature",
    "git_branch == None",
    "git_dirty",
    "git_dirty == 1",
    "git_dirty == true and outcome != ok",
    "git_commit ~ dead",
    "id ~ 7",
    "duration == 2 or duration > 59",
    "duration < 1",
    "not duration",
    "started > 1700002000 and exit_code == 4",
    "exit_code",
    "targets",
    "targets == penguins",
    "metrics",
    "metrics.missing > 0 or outcome == ok and kind == run",
    "metrics.accuracy > 1e19",
    "metrics.rmse == metrics.accuracy",
    "metrics.rmse < metrics.accuracy",
]


@pytest.mark.parametrize("where", WHERE)
def test_sql_filter_equals_the_python_filter(store: RunStore, plain_store: RunStore, where: str):
    for s in (store, plain_store):
        everything = _all(s)
        expected = [r.id for r in query.select(everything, where)]
        assert [r.id for r in s.select(where)] == expected
        limited = [r.id for r in s.select(where, limit=7)]
        assert limited == expected[:7]


@pytest.mark.parametrize(
    "sort",
    [
        "metrics.accuracy",
        "metrics.rmse",  # NaN, objects and lists among the values: sorted in Python
        "metrics.f1.macro",
        "params.train.penalty",
        "git_dirty",
        "duration",
        "started",
        "kind",
        "extra.env",
    ],
)
@pytest.mark.parametrize("descending", [False, True])
def test_sql_sort_equals_the_python_sort(
    store: RunStore, plain_store: RunStore, sort: str, descending: bool
):
    for s in (store, plain_store):
        everything = _all(s)
        for where, limit in [(None, None), ("kind == exp or outcome ~ fail", 9)]:
            expected = [r.id for r in query.select(everything, where, sort, descending, limit)]
            got = [r.id for r in s.select(where, sort, descending, limit)]
            assert got == expected, (where, sort, descending, limit)
    con = sqlite3.connect(plain_store.path)  # ...and on the plain store the order came from SQL
    order = querysql.order(sort, descending)
    unplaceable = f"SELECT count(*) FROM runs WHERE {order.unknown}"
    assert con.execute(unplaceable, order.args).fetchone()[0] == 0
    con.close()


def _unknown_ids(store: RunStore, where: str) -> set[str]:
    cond = querysql.where(query.parse(where))
    con = sqlite3.connect(store.path)
    try:
        rows = con.execute(
            f"SELECT id FROM runs WHERE json_valid(metrics) AND json_valid(params) "
            f"AND ({cond.sql}) IS NULL",
            cond.args,
        )
        return {r[0] for r in rows}
    finally:
        con.close()


def _readable(r: RunRecord) -> bool:
    """Whether SQLite can parse the record's metrics and params (no NaN, no Infinity)."""
    try:
        json.dumps([r.metrics, r.params], allow_nan=False)
    except ValueError:
        return False
    return True


def test_sql_decides_every_ordinary_row(store: RunStore):
    """In valid JSON, SQL leaves to Python only the values it cannot judge exactly: integers
    beyond 2**53 and non-ASCII text under `~`; every other row is decided in SQL."""
    everything = _all(store)
    records = [r for r in everything if _readable(r)]
    big = {
        r.id
        for r in records
        if isinstance(r.metrics.get("accuracy"), int) and abs(r.metrics["accuracy"]) >= 2**53
    }
    assert big and _unknown_ids(store, "metrics.accuracy > 0.5") == big
    penalties = {
        r.id
        for r in records
        if r.kind == "exp"
        and isinstance(r.params.get("train"), dict)
        and not r.params["train"]["penalty"].isascii()
    }
    assert penalties
    assert _unknown_ids(store, "kind == exp and params.train.penalty ~ o") == penalties
    assert len(records) < len(everything)  # NaN records exist; the filters above judged them


def test_hostile_filters_are_parameters_not_sql(store: RunStore):
    """Text from the filter never becomes SQL: quotes, comments and path characters are values."""
    for where in [
        'message == "x\'); DROP TABLE runs; --"',
        'params.train.penalty ~ "\'"',
        "metrics.a-b > 1",
        'extra."x" == 1',
    ]:
        try:
            got = [r.id for r in store.select(where)]
        except UsageError:
            continue
        assert got == [r.id for r in query.select(_all(store), where)]
    assert len(store.list(limit=None)) == 300


def test_runs_list_cli_uses_the_store(store: RunStore, cli):
    res = cli(
        [
            "runs",
            "list",
            "-w",
            "metrics.accuracy > 0.5",
            "-s",
            "metrics.accuracy",
            "--desc",
            "-n",
            "3",
            "--json",
        ],
        cwd=store.root,
    )
    assert res.exit_code == 0, res.output
    got = [r["id"] for r in json.loads(res.stdout)]
    want = query.select(_all(store), "metrics.accuracy > 0.5", "metrics.accuracy", True, 3)
    assert got == [r.id for r in want]
    bad = cli(["runs", "list", "-s", "accuracy"], cwd=store.root)
    assert bad.exit_code == 2 and "cannot sort" in bad.output
