"""Redaction of everything diagnose writes or prints: the bundle's files, its manifest and the
findings.

Secrets are found by their shape, never by searching for a known secret's value: replacing
every occurrence of, say, the sudo password would turn a weak one ("etcd") into an oracle,
each <redacted> in the bundle showing where it matched. So the inventory's secrets
(ansible_password, ansible_become_password, vaulted values) are hidden where they appear
as what they are: assignments of a password-like name, vault blocks, URL credentials,
command-line passwords, authorization headers and private keys."""

from __future__ import annotations

import re

REDACTED = "<redacted>"
REDACTED_KEY = "<redacted private key>"
REDACTED_VAULT = "<redacted vault>"

_KEY_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_KEY_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY-----")
# A key's body: base64 lines, or PEM headers such as "Proc-Type: 4,ENCRYPTED".
_KEY_BODY = re.compile(r"[A-Za-z0-9+/=]*|[A-Za-z-]+: [^\n]*")

# An Ansible vault: the header, then lines of hex (indented under `!vault |` in YAML).
_VAULT = re.compile(r"\$ANSIBLE_VAULT;[^\n]*(?:\n[ \t]*[0-9a-fA-F]+[ \t]*(?=\n|$))*")

# scheme://user:password@host: the password only, the user says who.
_URL_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@]*:)[^\s/@]+(?=@)")
# curl/wget style: -u user:password, --user user:password, --user=user:password.
_USER_OPTION = re.compile(r"(?P<head>(?:\s|^)(?:-u\s*|--user[=\s]+)['\"]?[^\s:'\"]*:)[^\s'\"]+")
# --password X, --db-pass X, --token X (the `=` form is an assignment, below).
_SECRET_OPTION = re.compile(
    r"(?i)(?P<head>--[\w-]*(?:pass|token|secret)[\w-]*\s+)(?P<value>['\"][^'\"\n]*['\"]|[^\s/-]\S*)"
)
_AUTHORIZATION = re.compile(
    r"(?i)(?P<head>\b(?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?"
    r"(?:(?:basic|bearer|token|digest|negotiate)\s+)?)[^\s'\",}]+"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+")
# The lookbehind changes no match (a name found inside a word is found from the word's start
# too) but spares the engine retrying every position inside each word: 4x faster on a bundle.
_ASSIGNMENT = re.compile(
    r"(?i)(?<![\w.-])(?P<name>[\w.-]*(?:pass|token|secret|key)[\w.-]*)(?P<quote>[\"']?)"
    r"(?P<sep>[ \t]*[=:][ \t]*)(?P<value>[|>][+-]?[ \t]*(?:\n[ \t]+[^\n]*)+"
    r"|\"[^\"\n]*\"|'[^'\n]*'|[^\s,;&\"'}]+)"
)
# Names that are a secret whatever the separator; a name that merely contains "pass"
# ("passed", "bypass") is one only in an assignment with `=` (DB_PASS=..., *PASS*=).
_SECRET_NAME = re.compile(r"(?i)(passw(?:or)?d|passphrase|token|secret|key|(?:^|[_.-])pass$)")


def _private_keys(text: str) -> str:
    """Each private key block becomes one marker; a block cut short (no END line, as in a
    truncated log) ends at the first line that cannot belong to a key."""
    out: list[str] = []
    pos = 0
    while (begin := _KEY_BEGIN.search(text, pos)) is not None:
        out.append(text[pos : begin.start()])
        end = begin.end()
        while end < len(text) and text[end] == "\n":
            line_end = text.find("\n", end + 1)
            line_end = len(text) if line_end < 0 else line_end
            line = text[end + 1 : line_end]
            if _KEY_END.fullmatch(line.strip()):
                end = line_end
                break
            if not line.strip() or not _KEY_BODY.fullmatch(line.strip()):
                break
            end = line_end
        out.append(REDACTED_KEY)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _redact_assignment(match: re.Match[str]) -> str:
    value = match["value"]
    bare = value.strip("\"'")
    # A path is a file name or an etcd prefix (FLANNEL_ETCD_KEY=/atomic.io/network,
    # --service-account-key-file=/etc/...), never the secret itself: keep it for diagnosis.
    # `!vault` tags a vault block, hidden whole above; a YAML block scalar (| or >) is hidden
    # with its lines.
    if not bare or bare.startswith("/") or bare in (REDACTED, "!vault"):
        return match.group(0)
    if not _SECRET_NAME.search(match["name"]) and "=" not in match["sep"]:
        return match.group(0)
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match['name']}{match['quote']}{match['sep']}{quote}{REDACTED}{quote}"


def _redact_option(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match['head']}{quote}{REDACTED}{quote}"


def redact(text: str) -> str:
    """Hide every secret `text` shows by its shape (see the module's documentation). A pattern
    runs only when the text holds the literal every match of it contains: a bundle holds
    hundreds of outputs, most of them with none of these shapes."""
    text = _private_keys(text)
    if "$ANSIBLE_VAULT;" in text:
        text = _VAULT.sub(REDACTED_VAULT, text)
    if "://" in text:
        text = _URL_USERINFO.sub(lambda m: m["head"] + REDACTED, text)
    if "-u" in text:
        text = _USER_OPTION.sub(lambda m: m["head"] + REDACTED, text)
    lower = text.casefold()  # folds as the (?i) patterns do, long s and Kelvin sign included
    secret_word = any(word in lower for word in ("pass", "token", "secret"))
    if "--" in text and secret_word:
        text = _SECRET_OPTION.sub(_redact_option, text)
    if "authorization" in lower:
        text = _AUTHORIZATION.sub(lambda m: m["head"] + REDACTED, text)
    if "bearer" in lower:
        text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    if secret_word or "key" in lower:
        text = _ASSIGNMENT.sub(_redact_assignment, text)
    return text
