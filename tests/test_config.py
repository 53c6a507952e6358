import pytest

from qpsweep.config.scenario import normalize_endpoint, parse_header, parse_percentiles, parse_qps
from qpsweep.config.secrets import redact_argv, scrub
from qpsweep.errors import ConfigError


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        ("http://h:8000", "http://h:8000/v1/chat/completions"),
        ("http://h:8000/", "http://h:8000/v1/chat/completions"),
        ("http://h:8000/v1", "http://h:8000/v1/chat/completions"),
        ("https://h/v1/chat/completions", "https://h/v1/chat/completions"),
        ("http://h/openai", "http://h/openai/v1/chat/completions"),
        ("http://h:1/x/v1/chat/completions?a=1", "http://h:1/x/v1/chat/completions?a=1"),
    ],
)
def test_endpoint_forms(raw: str, url: str) -> None:
    assert normalize_endpoint(raw) == url


@pytest.mark.parametrize("raw", ["localhost:8000", "ftp://h", "http://", "127.0.0.1"])
def test_endpoint_without_scheme_or_host(raw: str) -> None:
    with pytest.raises(ConfigError, match="--endpoint"):
        normalize_endpoint(raw)


def test_qps_list() -> None:
    assert parse_qps("1, 5,10,20.5") == (1.0, 5.0, 10.0, 20.5)


@pytest.mark.parametrize("raw", ["0", "-1", "1,,2", "", "abc", "inf", "nan"])
def test_bad_qps(raw: str) -> None:
    with pytest.raises(ConfigError, match="--qps"):
        parse_qps(raw)


def test_percentiles() -> None:
    assert parse_percentiles("99,50,99.9,50") == (50.0, 99.0, 99.9)
    with pytest.raises(ConfigError, match=r"'97' is not one of 50, 90, 95, 99, 99\.9"):
        parse_percentiles("50,97")


def test_headers() -> None:
    assert parse_header("X-Team: infra:core") == ("X-Team", "infra:core")
    for bad in ("novalue", ": x", "Bad Name: x"):
        with pytest.raises(ConfigError, match="--header"):
            parse_header(bad)


def test_redact_argv_masks_keys_and_secret_headers() -> None:
    argv = [
        "--api-key",
        "sk-1",
        "--api-key=sk-2",
        "-H",
        "Authorization: Bearer sk-3",
        "--header=X-Api-Key: sk-4",
        "-H",
        "X-Team: infra",
        "--model",
        "m",
    ]
    out = redact_argv(argv)
    assert not any("sk-" in a for a in out)
    assert "X-Team: infra" in out and "m" in out
    assert scrub("key sk-1 and sk-1", ["sk-1", ""]) == "key *** and ***"
