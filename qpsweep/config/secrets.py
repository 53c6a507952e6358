"""Keeping secrets out of everything qpsweep writes or prints.

The secrets of a run (``secrets_of``): the API key, the value of every secret-looking header
(``is_secret_header``: Authorization, X-Api-Key, Api-Key, Cookie, ...) and, for a value of
the form ``Bearer KEY`` (any scheme word), ``KEY`` alone, and the password of a URL's
userinfo (``http://user:KEY@host/``; the user name when there is no password).
``argv_secrets`` finds the same in a command line, in every spelling argparse accepts.

``Masker(secrets).mask(text)`` replaces with ``***`` every occurrence of a secret and every
substring of ``WINDOW_CHARS`` (8) or more characters of one (an error body cut inside the key,
a quoted chunk holding a prefix of it).  Secrets shorter than ``MIN_SECRET_CHARS`` are not
searched for in text (masking every ``"a"`` would wreck the text and hide nothing); they are
masked where they stand (``redact_argv``, the metadata's headers).  The cost is linear in the
text, one set lookup per character: it is meant for error messages and settings, never for
the bodies of successful responses.

``redact_argv`` rewrites a command line: API keys and secret header values become ``***`` in
every spelling (``--api-key K``, ``--api-key=K``, an unambiguous prefix such as ``--api-k``,
``-H 'K: V'``, ``-HK: V``, ``--header=K: V``, ``--heade 'K: V'``), URL passwords too, and
then anything the masker of the given secrets finds.  All pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

MASK = "***"
WINDOW_CHARS = 8
MIN_SECRET_CHARS = 4
_SECRET_HEADER_WORDS = ("auth", "key", "token", "secret", "cookie", "password")
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/?#@\s]*)@")


def is_secret_header(name: str) -> bool:
    """True when a header's value should never be written (Authorization, X-Api-Key, ...)."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_HEADER_WORDS)


def header_secrets(name: str, value: str) -> tuple[str, ...]:
    """The secrets a header carries: none for an ordinary header; for a secret one its value
    and, for ``Scheme TOKEN`` (``Bearer KEY``), the token alone; for a cookie header, each
    cookie's value."""
    value = value.strip()
    if not value or not is_secret_header(name.strip()):
        return ()
    token = value.partition(" ")[2]
    found = [value, token.strip()]
    if "cookie" in name.lower():  # each cookie's value: "a=KEY; b=KEY2"
        found += [part.partition("=")[2].strip() for part in value.split(";")]
    return tuple(dict.fromkeys(s for s in found if s))


def url_secrets(url: str) -> tuple[str, ...]:
    """The password of each URL userinfo in ``url`` (``http://user:KEY@host``), or the user
    name of one without a password (``http://KEY@host``, a token given as the user)."""
    out: list[str] = []
    for found in _URL_USERINFO.finditer(url):
        user, sep, password = found["info"].partition(":")
        secret = password if sep else user
        if secret:
            out.append(secret)
    return tuple(out)


def mask_url(url: str) -> str:
    """``url`` with the password of its userinfo (or a user name alone) masked."""

    def masked(found: re.Match[str]) -> str:
        user, sep, password = found["info"].partition(":")
        info = f"{user}:{MASK}" if sep and password else (user + sep if sep else MASK)
        return f"{found['scheme']}{info}@"

    return _URL_USERINFO.sub(masked, url)


def secrets_of(
    api_key: str | None, headers: Iterable[tuple[str, str]], url: str = ""
) -> tuple[str, ...]:
    """Every secret a run knows from its key, its headers and its URL (see the module)."""
    found = [api_key or ""]
    for name, value in headers:
        found.extend(header_secrets(name, value))
    found.extend(url_secrets(url))
    return tuple(dict.fromkeys(s for s in found if s))


def _flag_kind(flag: str) -> str | None:
    """``"key"`` for ``--api-key`` or a prefix argparse could take for it (``--api-k``),
    ``"header"`` for ``--header`` or a prefix of it (``--heade``); else None.  An ambiguous
    prefix (``--head``) is masked too: argparse refuses it anyway."""
    for kind, long in (("key", "--api-key"), ("header", "--header")):
        if flag == long or (len(flag) > 3 and long.startswith(flag)):
            return kind
    return None


def _flag_value(args: Sequence[str], k: int) -> tuple[str | None, str | None, int]:
    """The secret flag at ``args[k]``: (``"key"``, ``"header"`` or None; its value when it is
    attached, as in ``--api-key=K``, ``-HK: V`` or ``-H=K: V``; the index of its value when
    that is the next argument, else -1)."""
    arg = args[k]
    if arg.startswith("-H"):
        return (
            ("header", arg[2:].removeprefix("="), -1) if len(arg) > 2 else ("header", None, k + 1)
        )
    flag, eq, value = arg.partition("=")
    kind = _flag_kind(flag) if arg.startswith("--") else None
    if kind is None:
        return None, None, -1
    return (kind, value, -1) if eq else (kind, None, k + 1)


def argv_secrets(argv: Sequence[str]) -> tuple[str, ...]:
    """The secrets a command line gives: values of ``--api-key`` and of secret ``-H`` headers
    in every spelling (see ``redact_argv``), and URL passwords in any argument."""
    found: list[str] = []
    for k, arg in enumerate(argv):
        kind, value, at = _flag_value(argv, k)
        if value is None and 0 <= at < len(argv):
            value = argv[at]
        if kind == "key" and value:
            found.append(value)
        elif kind == "header" and value:
            name, _, header_value = value.partition(":")
            found.extend(header_secrets(name, header_value))
        found.extend(url_secrets(arg))
    return tuple(dict.fromkeys(s for s in found if s))


def redact_header(value: str) -> str:
    """``"K: V"`` -> ``"K: ***"`` when K looks secret; other values unchanged."""
    name, sep, _ = value.partition(":")
    return f"{name}{sep} {MASK}" if sep and is_secret_header(name.strip()) else value


def redact_argv(argv: Sequence[str], secrets: Iterable[str] = ()) -> list[str]:
    """Copy of ``argv`` with ``--api-key`` values, secret header values and URL passwords
    masked in every spelling argparse accepts (see the module), then every argument masked
    of ``secrets`` and of the secrets the command line itself gives (``argv_secrets``)."""
    masker = Masker((*secrets, *argv_secrets(argv)))
    out: list[str] = []
    value_of: str | None = None  # the kind of flag whose value this argument is
    for k, arg in enumerate(argv):
        if value_of is not None:
            out.append(MASK if value_of == "key" else masker.mask(redact_header(arg)))
            value_of = None
            continue
        kind, value, at = _flag_value(argv, k)
        if kind is not None and value is not None:
            head = arg[: len(arg) - len(value)]
            out.append(head + (MASK if kind == "key" else masker.mask(redact_header(value))))
        else:
            out.append(masker.mask(mask_url(arg)))
            value_of = kind if at >= 0 else None
    return out


class Masker:
    """Masks the given secrets, and every substring of ``WINDOW_CHARS`` or more characters of
    one, in a text (see the module); ``bool(masker)`` is false when there is nothing to mask."""

    __slots__ = ("_whole", "_windows")

    def __init__(self, secrets: Iterable[str]) -> None:
        kept = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        self._whole = tuple(s for s in kept if len(s) < WINDOW_CHARS)
        self._windows = frozenset(
            s[i : i + WINDOW_CHARS] for s in kept for i in range(len(s) - WINDOW_CHARS + 1)
        )

    def __bool__(self) -> bool:
        return bool(self._whole or self._windows)

    def mask(self, text: str) -> str:
        """``text`` with every secret, and every long enough piece of one, as ``***``; also
        where the text spells them escaped (``\\u0073``, ``%73``, ``\\/``: see ``_decoded``)."""
        for secret in self._whole:
            text = text.replace(secret, MASK)
        windows = self._windows
        if not windows or len(text) < WINDOW_CHARS:
            return text
        if "\\" in text or "%" in text:
            return self._mask_escaped(text)
        return _cover(text, _hits(text, windows), None)

    def _mask_escaped(self, text: str) -> str:
        """``mask`` of a text that may hold escapes: the windows are looked for in its decoded
        form, and each hit masks the original characters it was decoded from."""
        decoded, spans = _decoded(text)
        return _cover(text, _hits(decoded, self._windows), spans)

    def mask_json(self, value: object) -> object:
        """``value`` (JSON's dicts, lists and scalars) with every string masked, keys too."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {self.mask(str(k)): self.mask_json(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.mask_json(v) for v in value]
        return value


_ESCAPE = re.compile(r"\\u[0-9a-fA-F]{4}|%[0-9a-fA-F]{2}|\\[\\/\"]")


def _decoded(text: str) -> tuple[str, list[tuple[int, int]]]:
    """``text`` with its JSON ``\\uXXXX`` and ``\\/ \\\\ \\"`` escapes and its URL ``%XX``
    escapes decoded (a key echoed inside a JSON string or a query), and for each decoded
    character the span of ``text`` it came from."""
    chars: list[str] = []
    spans: list[tuple[int, int]] = []
    at = 0
    for found in _ESCAPE.finditer(text):
        start, end = found.span()
        chars.extend(text[at:start])
        spans.extend((i, i + 1) for i in range(at, start))
        escape = found.group()
        if escape[0] == "%":
            chars.append(chr(int(escape[1:], 16)))
        elif escape[1] == "u":
            chars.append(chr(int(escape[2:], 16)))
        else:
            chars.append(escape[1])
        spans.append((start, end))
        at = end
    chars.extend(text[at:])
    spans.extend((i, i + 1) for i in range(at, len(text)))
    return "".join(chars), spans


def _hits(text: str, windows: frozenset[str]) -> list[int]:
    """Where in ``text`` a window of a secret starts."""
    return [i for i in range(len(text) - WINDOW_CHARS + 1) if text[i : i + WINDOW_CHARS] in windows]


def _cover(text: str, hits: list[int], spans: list[tuple[int, int]] | None) -> str:
    """``text`` with each run of overlapping windows at ``hits`` (positions in a decoded form
    of it whose character ``k`` came from ``text[spans[k][0]:spans[k][1]]``; None: ``text``
    itself) as one ``***``."""
    if not hits:
        return text
    runs: list[tuple[int, int]] = []
    for i in hits:
        if runs and i <= runs[-1][1]:
            runs[-1] = (runs[-1][0], i + WINDOW_CHARS)
        else:
            runs.append((i, i + WINDOW_CHARS))
    pieces, kept_from = [], 0
    for start, end in runs:
        pieces += [text[kept_from : spans[start][0] if spans else start], MASK]
        kept_from = spans[end - 1][1] if spans else end
    pieces.append(text[kept_from:])
    return "".join(pieces)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced by ``***``, and every substring of one of
    ``WINDOW_CHARS`` or more characters (``Masker``; a secret shorter than ``MIN_SECRET_CHARS``
    is replaced only whole)."""
    for secret in secrets:
        if secret and len(secret) < MIN_SECRET_CHARS:
            text = text.replace(secret, MASK)
    return Masker(secrets).mask(text)


def utf8_safe(text: str) -> str:
    """``text`` as it can be written as UTF-8: a lone surrogate (``"\\ud83d"`` in a server's
    JSON, an undecodable byte of an argument) becomes ``?``."""
    return text.encode("utf-8", "replace").decode("utf-8")
