"""Apps and functions that the command event tests run (test_command.py)."""
import os
import subprocess
import sys
import time

import click
from flask import Flask, request

flask_app = Flask(__name__)
SEEN = []


@flask_app.route("/", defaults={"rest": ""}, methods=["GET", "POST"])
@flask_app.route("/<path:rest>", methods=["GET", "POST"])
def everything(rest):
    SEEN.append((request.method, request.full_path, request.get_data(as_text=True)))
    return "served"


@flask_app.cli.command("greet")
@click.argument("name")
def greet(name):
    click.echo(f"hello {name} from {os.getpid()}")


@flask_app.cli.command("fail")
def fail():
    click.echo("about to fail", err=True)
    raise SystemExit(3)


def handler(event, context):
    SEEN.append(event)
    return {"handled": True}


def touch(args):
    """Leaves a file behind: the proof that a command ran."""
    with open(args[0], "w") as f:
        f.write("ran")


def add(args):
    print("adding", args)
    sys.stderr.write("to stderr\n")
    sys.stderr.flush()
    return {"sum": sum(int(a) for a in args)}


def unprintable(args):
    return {1, 2}


def boom(args):
    print("before the error", flush=True)
    raise ValueError(f"boom: {args}")


def flood(args):
    """Numbered lines well past the output cap; the last one says so."""
    count = int(args[0])
    out = sys.stdout
    for i in range(count):
        out.write(f"line {i:07d}\n")
    out.write("the end\n")


def hang(args):
    """Prints its and a grandchild's pid (and writes them to args[0]), then outlives any deadline;
    ignores SIGTERM."""
    import signal
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(f"pids {os.getpid()} {grandchild.pid}", flush=True)
    with open(args[0] + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {grandchild.pid}")
    os.rename(args[0] + ".tmp", args[0])
    while True:
        time.sleep(1)
