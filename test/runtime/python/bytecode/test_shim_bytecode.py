"""The Python layer's bytecode (scripts/compile-python-shim.js): for every Python minor the layer
supports, one unchecked-hash pyc per shim module, made from the current source, and taken by that
minor's import system instead of the source. Each minor runs as Pyodide (CPython built for
WebAssembly, from npm) and, where this machine has one, as a native interpreter too."""
import _imp
import glob
import json
import os
import shutil
import subprocess

import pytest

from lambdatest import ROOT

HERE = os.path.dirname(os.path.abspath(__file__))
LAYER = os.path.join(ROOT, "assets", "python-shim-layer", "python")
SOURCE = os.path.join(ROOT, "runtime", "python", "warm_web")
REBUILD = "run `npx projen bundle:python-shim`"
# Each minor's bytecode magic number (importlib's MAGIC_NUMBER, frozen at the minor's first rc).
MINORS = {
    "cpython-312": {"magic": 3531, "version": "3.12", "pyodide": "pyodide-py312"},
    "cpython-313": {"magic": 3571, "version": "3.13", "pyodide": "pyodide-py313"},
    "cpython-314": {"magic": 3627, "version": "3.14", "pyodide": "pyodide-py314"},
}
MODULES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(SOURCE, "*.py")))


def native_python(version):
    """A native interpreter of ``version`` installed by pyenv or on PATH, or None."""
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    installed = sorted(glob.glob(os.path.join(pyenv_root, "versions", f"{version}.*", "bin", f"python{version}")))
    if installed:
        return installed[-1]
    found = shutil.which(f"python{version}")
    # pyenv's shims answer for versions that are not active with an error, not an interpreter.
    return found if found and os.sep + "shims" + os.sep not in found else None


RUNNERS = [(tag, "pyodide") for tag in MINORS] + [
    (tag, "native") for tag, minor in MINORS.items() if native_python(minor["version"])]


@pytest.mark.parametrize("tag", MINORS)
def test_every_module_has_fresh_unchecked_hash_bytecode(tag):
    magic = MINORS[tag]["magic"].to_bytes(2, "little") + b"\r\n"
    for name in MODULES:
        pyc = os.path.join(LAYER, "warm_web", "__pycache__", f"{name}.{tag}.pyc")
        assert os.path.isfile(pyc), f"{pyc} is missing: {REBUILD}"
        with open(pyc, "rb") as f:
            header = f.read(16)
        with open(os.path.join(SOURCE, f"{name}.py"), "rb") as f:
            source = f.read()
        assert header[:4] == magic, f"{pyc}: magic {header[:4].hex()} is not {tag}'s {magic.hex()}"
        flags = int.from_bytes(header[4:8], "little")
        assert flags == 0b01, f"{pyc}: flags {flags:#b}, want hash-based without source check (0b01)"
        expected = _imp.source_hash(int.from_bytes(magic, "little"), source)
        assert header[8:16] == expected, f"{pyc} was compiled from another {name}.py: {REBUILD}"


@pytest.fixture(scope="module")
def poisoned_layer(tmp_path_factory):
    """The layer with every source replaced: only the bytecode can make an import work."""
    root = tmp_path_factory.mktemp("layer")
    layer = root / "python"
    shutil.copytree(LAYER, layer)
    for name in MODULES:
        (layer / "warm_web" / f"{name}.py").write_text(
            "raise ImportError('POISONED: compiled from source, not loaded from bytecode')\n")
    task = root / "task"
    task.mkdir()
    (task / "smoke_app.py").write_text(
        "from urllib.parse import parse_qs\n\n\n"
        "def app(environ, start_response):\n"
        "    name = parse_qs(environ['QUERY_STRING'])['name'][0]\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain; charset=utf-8')])\n"
        "    return [f\"hello {name} via {environ['PATH_INFO']}\".encode()]\n")
    return str(layer), str(task)


@pytest.mark.parametrize("tag,runner", RUNNERS, ids=[f"{tag}-{runner}" for tag, runner in RUNNERS])
def test_each_minor_imports_the_shim_from_bytecode_and_serves(tag, runner, poisoned_layer):
    minor = MINORS[tag]
    smoke = os.path.join(HERE, "smoke.py")
    # The event and context come from the suite's own helpers (eventshapes, lambdatest), and eventshapes
    # reads the shared vectors: Pyodide sees only the folders passed (smoke.py reads the first three).
    dirs = [*poisoned_layer, os.path.dirname(HERE), os.path.join(ROOT, "test", "vectors")]
    if runner == "native":
        command = [native_python(minor["version"]), "-I", smoke, *dirs]
    else:
        command = ["node", os.path.join(HERE, "pyodide_run.js"), minor["pyodide"], smoke, *dirs]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout}\n{done.stderr}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["tag"] == tag
    assert result["modules"] == len(MODULES)
    assert (result["status"], result["body"]) == (200, "hello café via /hello")
    assert len(result["environmentId"]) == 16 and result["heldMs"] >= 0
