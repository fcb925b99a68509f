"""warm_web.django.allowed_hosts() / csrf_trusted_origins(): the WARM_WEB_ALLOWED_HOSTS and
WARM_WEB_CSRF_TRUSTED_ORIGINS contract the constructs set, and the errors for values Django would not match."""
import pytest
from django.core.exceptions import ImproperlyConfigured

from warm_web.django import allowed_hosts, csrf_trusted_origins


def test_hosts_from_the_environment():
    environ = {"WARM_WEB_ALLOWED_HOSTS": " www.example.com, .cloudfront.net ,,[2001:db8::1]"}
    assert allowed_hosts(environ=environ) == ["www.example.com", ".cloudfront.net", "[2001:db8::1]"]
    assert allowed_hosts(environ={"WARM_WEB_ALLOWED_HOSTS": "*"}) == ["*"]


def test_hosts_default_when_not_set():
    assert allowed_hosts(environ={}) == []
    assert allowed_hosts(environ={"WARM_WEB_ALLOWED_HOSTS": " "}, default=(".on.aws",)) == [".on.aws"]


def test_origins_from_the_environment():
    environ = {"WARM_WEB_CSRF_TRUSTED_ORIGINS": "https://www.example.com,https://*.example.org,http://localhost:8000"}
    assert csrf_trusted_origins(environ=environ) == [
        "https://www.example.com", "https://*.example.org", "http://localhost:8000"]
    assert csrf_trusted_origins(environ={}, default=["https://a.example"]) == ["https://a.example"]


@pytest.mark.parametrize("value, entry", [
    ("https://www.example.com", "https://www.example.com"),
    ("www.example.com/admin", "www.example.com/admin"),
    ("ok.example.com,*.example.com", "*.example.com"),
    ("www.example.com:443", "www.example.com:443"),
])
def test_a_host_django_would_never_match_fails_naming_it(value, entry):
    with pytest.raises(ImproperlyConfigured) as error:
        allowed_hosts(environ={"WARM_WEB_ALLOWED_HOSTS": value})
    assert str(error.value).startswith(f"warm_web.django: WARM_WEB_ALLOWED_HOSTS entry {entry!r} is not a Django host pattern")
    assert repr(value) in str(error.value)


@pytest.mark.parametrize("entry", ["www.example.com", "ftp://www.example.com", "https://www.example.com/", "https://"])
def test_an_origin_without_a_scheme_or_with_a_path_fails_naming_it(entry):
    with pytest.raises(ImproperlyConfigured, match=r"WARM_WEB_CSRF_TRUSTED_ORIGINS entry .* is not an origin \(scheme://host"):
        csrf_trusted_origins(environ={"WARM_WEB_CSRF_TRUSTED_ORIGINS": entry})
