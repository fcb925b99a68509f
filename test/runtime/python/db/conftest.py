"""Services for the database tests: PostgreSQL (primary + streaming replica) and Redis on loopback, started
once per session with test/services/*.sh and stopped at the end if this session started them; and the
Django worker process (worker.py) that runs the test project against them.

A service that cannot start skips the tests that need it, with the reason, unless CI=true: then it fails."""
import json
import os
import select
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
SERVICES = os.path.join(ROOT, "test", "services")
# Short enough to watch the replica come back in a test; production default is 30 s.
REPLICA_BACKOFF = 1.5


def _unavailable(message):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(message)


def run_service_script(name, *args, timeout=180):
    proc = subprocess.run(["bash", os.path.join(SERVICES, name), *args], capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"test/services/{' '.join([name, *args])} failed ({proc.returncode}): "
                           f"{proc.stderr.strip()[-2000:]}")
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


def _start(script, started_key):
    try:
        env = run_service_script(script)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as error:
        _unavailable(str(error))
    return env, env.pop(started_key, "0") == "1"


@pytest.fixture(scope="session")
def postgres():
    env, started = _start("start-postgres.sh", "WW_PG_STARTED")
    yield env
    if started:
        run_service_script("stop-postgres.sh")


@pytest.fixture(scope="session")
def redis_server():
    env, started = _start("start-redis.sh", "WW_REDIS_STARTED")
    yield env
    if started:
        run_service_script("stop-redis.sh")


class Worker:
    """The Django project in its own process (see worker.py)."""

    def __init__(self, env):
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "worker.py")], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def __call__(self, op, timeout=60, **args):
        self.proc.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError(f"the Django worker did not answer {op} within {timeout}s")
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the Django worker exited ({self.proc.poll()}) during {op}; see its stderr")
        answer = json.loads(line)
        if not answer["ok"]:
            raise AssertionError(f"{op} failed in the Django worker: {answer['error']}\n{answer['traceback']}")
        return answer["result"]

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def django_worker(postgres, redis_server):
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed in this venv (pip install -r test/runtime/python/requirements-db.txt)")
    env = {**os.environ, **postgres, **redis_server, "DJANGO_SETTINGS_MODULE": "wwproj.settings",
           "WW_TEST_REPLICA_BACKOFF": str(REPLICA_BACKOFF)}
    worker = Worker(env)
    try:
        worker("setup", timeout=120)
        yield worker
    finally:
        worker.close()


@pytest.fixture
def replica(postgres, django_worker):
    """Stops and starts the replica; always leaves it running (and caught up) at the end of the test."""

    class Replica:
        port = int(postgres["WW_PG_REPLICA_PORT"])
        backoff = REPLICA_BACKOFF

        @staticmethod
        def kill():
            run_service_script("stop-postgres.sh", "--replica", "--immediate")

        @staticmethod
        def start():
            run_service_script("start-postgres.sh")

    yield Replica
    Replica.start()
    django_worker("wait_replica")


def _superuser(postgres, which):
    """A superuser connection over the server's unix socket (trust auth)."""
    import psycopg

    return psycopg.connect(host=postgres[f"WW_PG_{which}_DIR"], port=int(postgres[f"WW_PG_{which}_PORT"]),
                           user=postgres["WW_PG_SUPERUSER"], dbname="postgres", autocommit=True)


@pytest.fixture(params=["on", "off"], ids=lambda value: f"synchronous_commit={value}")
def synchronous_commit(request, postgres, django_worker):
    """The primary's synchronous_commit for the test (the test server's default is off), seen by new
    sessions of the app's user before the test starts; the app's connections are reopened."""
    import psycopg

    value = request.param

    def apply(setting):
        with _superuser(postgres, "PRIMARY") as conn:
            if setting is None:
                conn.execute("ALTER SYSTEM RESET synchronous_commit")
            else:
                conn.execute(f"ALTER SYSTEM SET synchronous_commit = '{setting}'")
            conn.execute("SELECT pg_reload_conf()")
        expected = setting or "off"
        for _ in range(200):
            with psycopg.connect(host="127.0.0.1", port=int(postgres["WW_PG_PRIMARY_PORT"]), dbname=postgres["DB_NAME"],
                                 user=postgres["DB_USER"], password=postgres["DB_PASSWORD"]) as conn:
                if conn.execute("SHOW synchronous_commit").fetchone()[0] == expected:
                    break
        else:
            raise AssertionError(f"synchronous_commit did not become {expected}")
        django_worker("close_connections")

    apply(value)
    yield value
    apply(None)


@pytest.fixture
def replay(postgres, django_worker):
    """Pauses replay on the replica (lag injected: it receives WAL but applies none of it) and resumes it;
    always resumed, and caught up, at the end of the test."""

    class Replay:
        def __init__(self):
            self.conn = _superuser(postgres, "REPLICA")

        def pause(self):
            self.conn.execute("SELECT pg_wal_replay_pause()")

        def resume(self):
            self.conn.execute("SELECT pg_wal_replay_resume()")
            django_worker("wait_replica")

    replay = Replay()
    try:
        yield replay
    finally:
        replay.conn.execute("SELECT pg_wal_replay_resume()")
        replay.conn.close()
        django_worker("wait_replica")
