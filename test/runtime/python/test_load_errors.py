"""A bad WARM_WEB_APP fails INIT with a message naming the variable and its value."""
import pytest

from warm_web.loader import load


@pytest.mark.parametrize("spec, kind, detail", [
    ("no_such_module_xyz:app", "wsgi", "cannot import module 'no_such_module_xyz'"),
    ("flaskapp:nope", "wsgi", "module 'flaskapp' has no attribute 'nope'"),
    ("flaskapp", "wsgi", "malformed: a wsgi app is named as module:attribute"),
    (":app", "asgi", "malformed"),
    ("flaskapp:", "wsgi", "malformed"),
    ("plainhandler", "handler", "malformed: a handler app is named as module.function"),
    ("plainhandler:handler", "handler", "malformed"),
    ("plainhandler.nope", "handler", "module 'plainhandler' has no attribute 'nope'"),
    ("no_such_module_xyz.handler", "handler", "cannot import module 'no_such_module_xyz'"),
    ("rawapps:NOT_CALLABLE", "wsgi", "'NOT_CALLABLE' is not callable"),
    ("flaskapp:app", "cgi", "WARM_WEB_APP_KIND='cgi' is not one of wsgi, asgi, handler"),
    ("flaskapp:app", None, "WARM_WEB_APP_KIND=None is not one of"),
])
def test_bad_app_spec_raises_naming_it(spec, kind, detail):
    with pytest.raises(RuntimeError) as caught:
        load(spec, kind)
    message = str(caught.value)
    assert message.startswith(f"WARM_WEB_APP={spec!r}")
    assert detail in message


@pytest.mark.parametrize("spec", [None, ""])
def test_unset_app_spec(spec):
    with pytest.raises(RuntimeError, match="^WARM_WEB_APP is not set$"):
        load(spec, "wsgi")


def test_import_error_inside_the_app_keeps_its_cause(tmp_path, monkeypatch):
    (tmp_path / "needs_missing_dep.py").write_text("import definitely_not_installed_dep\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RuntimeError) as caught:
        load("needs_missing_dep:app", "wsgi")
    assert "definitely_not_installed_dep" in str(caught.value)
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)
