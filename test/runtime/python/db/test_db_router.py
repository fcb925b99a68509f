"""warm_web.django's ReadReplicaRouter in a real Django project against a real primary + streaming replica.
Which server served a read is reported by that very query (inet_server_port(), pg_is_in_recovery())."""
import time
import uuid


def _name():
    return "item-" + uuid.uuid4().hex[:12]


def _ports(postgres):
    return int(postgres["WW_PG_PRIMARY_PORT"]), int(postgres["WW_PG_REPLICA_PORT"])


def test_settings_have_writer_and_replica(django_worker):
    assert django_worker("setup") == {"databases": ["default", "replica"]}


def test_reads_go_to_the_replica_and_writes_to_the_primary(django_worker, postgres):
    primary, replica = _ports(postgres)
    assert django_worker("request", method="GET", path="/server/") == {"port": replica, "standby": True}

    name = _name()
    wrote = django_worker("request", method="POST", path="/items/", query=f"name={name}&value=7")
    # The write went to the primary (the replica would have refused it), and read-your-writes: the reads
    # after it in the same request went to the primary too, and saw the row.
    assert wrote == {"wrote": name, "read": {"port": primary, "standby": False}, "found": True}

    # The next request starts afresh: once replicated, the row is read from the replica.
    django_worker("wait_replica")
    assert django_worker("request", method="GET", path="/items/", query=f"name={name}") == {
        "read": {"port": replica, "standby": True}, "found": True, "value": 7}


def test_read_your_writes_is_reset_per_request_without_the_middleware(django_worker, postgres):
    primary, replica = _ports(postgres)
    name = _name()
    wrote = django_worker("request", method="POST", path="/items/", query=f"name={name}", middleware=False)
    assert wrote["read"]["port"] == primary and wrote["found"]
    # No middleware: the request_started receiver still clears the flag for the next request.
    assert django_worker("request", method="GET", path="/server/", middleware=False)["port"] == replica


def test_atomic_blocks_read_the_writer(django_worker, postgres):
    primary, replica = _ports(postgres)
    answer = django_worker("request", method="GET", path="/atomic/")
    assert answer == {"inside": {"port": primary, "standby": False}, "after": {"port": replica, "standby": True}}


def test_middleware_sync_and_async(django_worker):
    assert django_worker("middleware_paths") == {
        "sync_before": False, "sync_read": "default", "sync_result": "sync response", "after": True,
        "async_capable": True, "async_before": False, "async_pinned": True, "async_result": "async response",
        "cookies": [30, "L"],
    }


def test_routing_decisions(django_worker):
    decisions = django_worker("routing_decisions")
    assert decisions == {
        "read": "replica",
        "write": "default",
        "read_after_write": "default",
        "read_in_atomic": "default",
        "write_in_atomic": "default",
        "read_after_atomic_write": "replica",
        "read_after_raw_write": "default",
        "read_after_raw_select": "replica",
        "migrate": {"default": True, "replica": False},
    }


def test_a_write_sent_to_the_replica_alias_is_refused_by_the_server(django_worker):
    answer = django_worker("write_through_replica", name=_name())
    assert answer["error"] == "InternalError"
    assert "read-only transaction" in answer["message"]


def test_replica_outage_falls_back_to_the_writer_with_one_log_line(django_worker, postgres, replica):
    primary, replica_port = _ports(postgres)
    django_worker("logs")  # clear
    # Open replica connections both ways (outside a request and inside one), then kill the server.
    assert django_worker("orm_read")["port"] == replica_port
    assert django_worker("request", method="GET", path="/server/")["port"] == replica_port
    replica.kill()

    # A persistent connection that died: the SELECT is run again on the writer.
    assert django_worker("orm_read") == {"port": primary, "standby": False, "alias": "default"}
    # Requests: served by the primary, none fails.
    for _ in range(3):
        assert django_worker("request", method="GET", path="/server/") == {"port": primary, "standby": False}
    # After the back-off the replica is tried again (connection refused this time): still the writer.
    time.sleep(replica.backoff + 0.2)
    assert django_worker("request", method="GET", path="/server/")["port"] == primary
    name = _name()
    assert django_worker("write_outside_request", name=name) == {"alias": "default", "read_alias": "default"}

    warnings = django_worker("logs")
    assert len(warnings) == 1, warnings
    assert "read replica unreachable" in warnings[0]["message"]
    assert django_worker("status")["down"] is True

    # Back up: reads return to the replica once the back-off has passed, without another warning.
    replica.start()
    django_worker("wait_replica")
    deadline = time.monotonic() + replica.backoff + 5
    while django_worker("request", method="GET", path="/server/")["port"] != replica_port:
        assert time.monotonic() < deadline, "reads did not return to the replica after the back-off"
        time.sleep(0.2)
    assert django_worker("request", method="GET", path="/items/", query=f"name={name}") == {
        "read": {"port": replica_port, "standby": True}, "found": True, "value": 0}
    assert django_worker("status")["down"] is False
    assert django_worker("logs") == []


def test_a_request_that_finds_the_replica_down_is_served_by_the_writer(django_worker, postgres, replica):
    primary, replica_port = _ports(postgres)
    django_worker("logs")
    assert django_worker("request", method="GET", path="/server/")["port"] == replica_port
    replica.kill()
    # The per-request health check of the persistent replica connection fails: the writer serves it.
    assert django_worker("request", method="GET", path="/items/", query="name=nobody") == {
        "read": {"port": primary, "standby": False}, "found": False, "value": None}
    assert len(django_worker("logs")) == 1
    replica.start()
    time.sleep(replica.backoff)
    assert django_worker("request", method="GET", path="/server/")["port"] == replica_port
    assert django_worker("logs") == []
