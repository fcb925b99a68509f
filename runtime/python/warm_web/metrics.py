"""CloudWatch Embedded Metric Format lines: the cold start (first invoke) and a slow INIT."""
import json


def _line(metrics, values, function_name, environment_id, timestamp_ms):
    return json.dumps({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "WarmWeb",
                "Dimensions": [["FunctionName"]],
                "Metrics": metrics,
            }],
        },
        "FunctionName": function_name,
        **values,
        "EnvironmentId": environment_id,
        "Runtime": "python",
    }, separators=(",", ":"))


def cold_start_line(function_name, environment_id, init_ms, timestamp_ms, restore=False):
    """The one EMF JSON line for a cold start.

    After a SnapStart restore ``restore`` is true: the line carries ``Restore: 1`` and, when
    ``init_ms`` is None (the restore time cannot be measured from inside), no InitDurationMs.
    """
    metrics = [{"Name": "ColdStart", "Unit": "Count"}]
    values = {"ColdStart": 1}
    if init_ms is not None:
        metrics.append({"Name": "InitDurationMs", "Unit": "Milliseconds"})
        values["InitDurationMs"] = init_ms
    if restore:
        values["Restore"] = 1
    return _line(metrics, values, function_name, environment_id, timestamp_ms)


def slow_init_line(function_name, environment_id, init_ms, threshold_ms, timestamp_ms):
    """The EMF line for an INIT longer than WARM_WEB_INIT_WARN_MS.

    Only SlowInit is a metric: InitDurationMs is already recorded by the cold-start line, and a
    second data point per slow environment would skew its statistics. Here it is a property.
    """
    return _line([{"Name": "SlowInit", "Unit": "Count"}],
                 {"SlowInit": 1, "InitDurationMs": init_ms, "InitWarnMs": threshold_ms},
                 function_name, environment_id, timestamp_ms)
