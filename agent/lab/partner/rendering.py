"""The emulator's reply document and its four renderings: xml (the default), json, bjson and text.

The shapes are what the public clients' parsers read (facts §4.4, §8); the text format is invented
(`key=value` lines; an error as `ERROR type(object): message`, as mgrctl prints it).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.lab.partner.rules import ApiError

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass
class Document:
    """One reply, before it is rendered in the format the client asked for."""

    values: dict[str, str | None] = field(default_factory=dict)  # top-level values; None: an empty element
    record: dict[str, str] | None = None  # one object (soft.edit): XML/json at the top of doc, bjson `model`
    elems: list[dict[str, str]] | None = None  # a list (soft, subaccount): `elem[*]`
    nested: dict[str, str] | None = None  # service.prolong: a doc inside the doc
    error: ApiError | None = None


def render(document: Document, output: str) -> tuple[str, bytes]:
    """(content type, body) of `document` as `out=` asks: xml (the default), json, bjson or text."""
    if output == "json":
        return "application/json", json.dumps({"doc": _json_doc(document)}, ensure_ascii=False).encode()
    if output == "bjson":
        return "application/json", json.dumps(_bjson_doc(document), ensure_ascii=False).encode()
    if output == "text":
        return "text/plain; charset=utf-8", _text_doc(document).encode()
    return "text/xml; charset=utf-8", _xml_doc(document)


def _xml_safe(text: str) -> str:
    """`text` with every character XML 1.0 cannot carry replaced: any stored value gives well-formed XML."""
    return _NOT_XML.sub("\ufffd", text)


def _xml_doc(document: Document) -> bytes:
    root = ET.Element("doc")

    def add(parent: ET.Element, key: str, value: str | None) -> None:
        ET.SubElement(parent, key).text = None if value is None else _xml_safe(value)

    if document.error is not None:
        error = ET.SubElement(root, "error", type=document.error.kind, object=_xml_safe(document.error.target))
        add(error, "msg", document.error.message)
    for key, value in document.values.items():
        add(root, key, value)
    for key, value in (document.record or {}).items():
        add(root, key, value)
    for elem in document.elems or ():
        element = ET.SubElement(root, "elem")
        for key, value in elem.items():
            add(element, key, value)
    if document.nested is not None:
        inner = ET.SubElement(root, "doc")
        for key, value in document.nested.items():
            add(inner, key, value)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _json_doc(document: Document) -> dict:
    """The XML mapped to JSON as BILLmanager does it: text as "$", attributes as "$name"."""

    def text(value: str | None) -> dict:
        return {} if value is None else {"$": value}

    doc: dict[str, Any] = {}
    if document.error is not None:
        error = document.error
        doc["error"] = {"$type": error.kind, "$object": error.target, "msg": text(error.message)}
    doc.update({key: text(value) for key, value in document.values.items()})
    doc.update({key: text(value) for key, value in (document.record or {}).items()})
    if document.elems is not None:
        doc["elem"] = [{key: text(value) for key, value in elem.items()} for elem in document.elems]
    if document.nested is not None:
        doc["doc"] = {key: text(value) for key, value in document.nested.items()}
    return doc


def _bjson_doc(document: Document) -> dict:
    """bjson: doc unwrapped; top-level values as {"v": text} (the order id at id.v), the record under
    `model`, list items under `elem`, the error message at error.msg.$ (as Upmind reads them)."""
    if document.error is not None:
        error = document.error
        return {"error": {"type": error.kind, "object": error.target, "msg": {"$": error.message}}}
    doc: dict[str, Any] = {key: {} if value is None else {"v": value} for key, value in document.values.items()}
    if document.record is not None:
        doc["model"] = dict(document.record)
    if document.elems is not None:
        doc["elem"] = [dict(elem) for elem in document.elems]
    if document.nested is not None:
        doc["doc"] = dict(document.nested)
    return doc


def _text_doc(document: Document) -> str:
    def line(value: str) -> str:
        return value.replace("\r", "\\r").replace("\n", "\\n")

    if document.error is not None:
        error = document.error
        return f"ERROR {error.kind}({line(error.target)}): {line(error.message)}\n"
    lines = [key if value is None else f"{key}={line(value)}" for key, value in document.values.items()]
    lines += [f"{key}={line(value)}" for key, value in (document.record or {}).items()]
    lines += [" ".join(f"{key}={line(value)}" for key, value in elem.items()) for elem in document.elems or ()]
    lines += [f"{key}={line(value)}" for key, value in (document.nested or {}).items()]
    return "".join(f"{text}\n" for text in lines)
