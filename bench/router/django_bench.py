"""Per-query overhead of warm_web.django.ReadReplicaRouter: the same ORM query (a primary-key lookup, i.e. a
simple indexed SELECT) on the same replica connection, routed (BenchRow.objects.get(pk=k), the router picks
'replica') and direct (BenchRow.objects.using('replica').get(pk=k), no router consulted). Interleaved, one
timing per query, medians. Prints one JSON object. Needs the DB_* env of test/services/start-postgres.sh."""
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(ROOT, "runtime", "python"), HERE]

import django  # noqa: E402
from django.conf import settings  # noqa: E402

from warm_web.django import databases  # noqa: E402

settings.configure(
    DATABASES=databases(), DATABASE_ROUTERS=["warm_web.django.ReadReplicaRouter"], INSTALLED_APPS=["benchapp"],
    USE_TZ=True, DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
)
django.setup()

from benchapp.models import BenchRow  # noqa: E402
from django.db import connections, router  # noqa: E402

ROWS = 1000
QUERIES = int(os.environ.get("BENCH_QUERIES", "4000"))
WARMUP = 300


def prepare():
    writer = connections["default"]
    if BenchRow._meta.db_table not in writer.introspection.table_names():
        with writer.schema_editor() as editor:
            editor.create_model(BenchRow)
    if BenchRow.objects.using("default").count() < ROWS:
        BenchRow.objects.using("default").all().delete()
        BenchRow.objects.using("default").bulk_create(BenchRow(id=i, name=f"row-{i}", value=i) for i in range(1, ROWS + 1))
    with writer.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
        lsn = cursor.fetchone()[0]
    deadline = time.monotonic() + 15
    with connections["replica"].cursor() as cursor:
        while True:
            cursor.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn])
            if cursor.fetchone()[0]:
                break
            if time.monotonic() > deadline:
                raise SystemExit("the replica did not catch up")
            time.sleep(0.05)


def main():
    prepare()
    assert BenchRow.objects.all().db == "replica", "the router did not pick the replica"
    with connections["replica"].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery()")
        assert cursor.fetchone()[0] is True

    def direct(k):
        return BenchRow.objects.using("replica").get(pk=k)

    def routed(k):
        return BenchRow.objects.get(pk=k)

    for i in range(WARMUP):
        direct(i % ROWS + 1)
        routed(i % ROWS + 1)
    times = {"direct": [], "routed": []}
    clock = time.perf_counter_ns
    for i in range(QUERIES):
        k = i % ROWS + 1
        order = (("direct", direct), ("routed", routed)) if i % 2 == 0 else (("routed", routed), ("direct", direct))
        for name, fn in order:
            start = clock()
            fn(k)
            times[name].append(clock() - start)
    direct_us = statistics.median(times["direct"]) / 1000
    routed_us = statistics.median(times["routed"]) / 1000

    # The router's own decision, called alone.
    calls = 20000
    start = clock()
    for _ in range(calls):
        router.db_for_read(BenchRow)
    decision_us = (clock() - start) / calls / 1000

    print(json.dumps({
        "query": "BenchRow.objects.get(pk=k): primary-key SELECT through the ORM, on the replica",
        "direct": "BenchRow.objects.using('replica').get(pk=k) (router not consulted)",
        "routed": "BenchRow.objects.get(pk=k) (ReadReplicaRouter picks 'replica')",
        "queries": QUERIES,
        "directMedianUs": round(direct_us, 2),
        "routedMedianUs": round(routed_us, 2),
        "ratio": round(routed_us / direct_us, 4),
        "routerDecisionUs": round(decision_us, 3),
        "django": django.get_version(),
    }))


if __name__ == "__main__":
    main()
