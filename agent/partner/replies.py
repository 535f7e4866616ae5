"""The API's replies, in any of the formats real clients use, as plain data or a typed error.

Errors arrive with HTTP 200 and live in the body: XML `<doc><error type=".."><msg>..`,
bjson `error.msg.$` or `error.msg`, optionally wrapped in `{"doc": ...}`. Values in bjson/json are
`{"$": text}` (or `{"v": text}` for an order's id); here every value becomes a plain string.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

from agent.errors import (
    PartnerAuthFailed,
    PartnerBadIp,
    PartnerError,
    PartnerNotFound,
    PartnerPaymentRequired,
    PartnerTransient,
)

Reply = dict[str, Any]  # values: str, Reply, or list[Reply]

# The error types BILLmanager is known to use are "auth", "missed", "value", "access"; how an unpaid
# account is reported is not public, so we also read the message.
_PAYMENT_WORDS = re.compile(r"unpaid|insufficient|not enough (money|funds)|balance|payment", re.IGNORECASE)
_AUTH_WORDS = re.compile(r"authori[sz]|password|login", re.IGNORECASE)


def parse_reply(body: bytes, output: str, func: str) -> Reply:
    """The reply's document as plain data; raises the typed PartnerError it reports, if any."""
    if not body.strip():
        raise PartnerTransient(f"{func}: empty reply from the partner API")
    try:
        document = _parse_xml(body) if output == "xml" else _parse_json(body)
    except (ValueError, ET.ParseError) as error:
        raise PartnerTransient(f"{func}: unreadable {output} reply from the partner API ({error})") from None
    refusal = document.get("error")
    if refusal is not None:
        raise error_from(func, refusal)
    return document


def _parse_json(body: bytes) -> Reply:
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if set(data) == {"doc"} and isinstance(data["doc"], dict):
        data = data["doc"]
    reply: Reply = _plain(data)  # a JSON object stays an object
    return reply


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if not isinstance(value, dict):
        return "" if value is None else str(value)
    if "$" in value and all(k == "$" or k.startswith("$") for k in value):
        return str(value["$"])
    if set(value) == {"v"}:
        return str(value["v"])
    return {key: _plain_field(item) for key, item in value.items()}


def _plain_field(item: Any) -> Any:
    """_plain of a field's value, the common text (bjson) and `{"$": text}` (json) taken without a
    call more: a list of 20 000 licenses holds 260 000 fields."""
    if type(item) is str:
        return item
    if type(item) is dict and len(item) == 1 and "$" in item:
        return str(item["$"])
    return _plain(item)


def _parse_xml(body: bytes) -> Reply:
    root = ET.fromstring(body)
    document = _xml_element(root)
    return document if isinstance(document, dict) else {}  # <doc/>: an empty list, a bare "ok"


def _xml_element(element: ET.Element) -> Any:
    children = list(element)
    if not children:
        text = (element.text or "").strip()
        return {**element.attrib, "msg": text} if element.tag == "error" else text
    result: Reply = dict(element.attrib)
    for child in children:
        value = _xml_element(child)
        if child.tag == "elem":
            result.setdefault("elem", []).append(value)
        else:
            result[child.tag] = value
    return result


def error_from(func: str, error: Any) -> PartnerError:
    """The typed error for an API error object."""
    if isinstance(error, dict):
        kind = str(error.get("type") or error.get("$type") or "")
        target = str(error.get("object") or error.get("$object") or "")
        message = error.get("msg", "")
        message = message.get("$", "") if isinstance(message, dict) else str(message)
    else:
        kind, target, message = "", "", str(error)
    text = f"partner API refused {func}: {kind + ': ' if kind else ''}{message or 'no message'}"
    if kind == "auth" or (not kind and _AUTH_WORDS.search(message)):
        return PartnerAuthFailed(text + " (check partner_credentials_file or $ISPAGENT_PARTNER_AUTHINFO)")
    if kind in ("payment", "balance") or _PAYMENT_WORDS.search(message):
        return PartnerPaymentRequired(text)
    if kind == "missed" and target in ("", "elid"):  # "missed func" is an unknown function, not a license
        return PartnerNotFound(text)
    if target == "ip" or kind == "ip":
        return PartnerBadIp(text)
    return PartnerError(text)


def text_of(reply: Reply, *path: str) -> str:
    """The string at `path` in `reply` ("" when absent): e.g. text_of(r, "doc", "newexpiredate")."""
    value: Any = reply
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return ""
        value = value[key]
    return value if isinstance(value, str) else ""


def records(reply: Reply) -> list[Reply]:
    """The list elems of a reply (one elem in XML is still a list)."""
    elems = reply.get("elem", [])
    return [e for e in (elems if isinstance(elems, list) else [elems]) if isinstance(e, dict)]


def record(reply: Reply) -> Reply:
    """The one record of a soft.edit reply: bjson puts it under `model`, XML at the top."""
    model = reply.get("model")
    return model if isinstance(model, dict) else reply
