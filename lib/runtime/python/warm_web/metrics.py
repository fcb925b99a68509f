"""CloudWatch Embedded Metric Format line emitted on an environment's first invoke."""
import json


def cold_start_line(function_name, environment_id, init_ms, timestamp_ms):
    """The one EMF JSON line for a cold start."""
    return json.dumps({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "WarmWeb",
                "Dimensions": [["FunctionName"]],
                "Metrics": [
                    {"Name": "ColdStart", "Unit": "Count"},
                    {"Name": "InitDurationMs", "Unit": "Milliseconds"},
                ],
            }],
        },
        "FunctionName": function_name,
        "ColdStart": 1,
        "InitDurationMs": init_ms,
        "EnvironmentId": environment_id,
        "Runtime": "python",
    }, separators=(",", ":"))
