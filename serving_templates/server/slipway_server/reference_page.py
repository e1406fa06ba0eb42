"""The /docs page: this server's API reference, rendered by the server from its own OpenAPI
document.

One self-contained HTML page: inline CSS, no JavaScript, no fonts, images or styles fetched from
anywhere, so it works offline and behind any firewall, and adds a few kilobytes instead of Swagger
UI's megabytes to the image. CONTENT_SECURITY_POLICY is sent with it and forbids loading anything.
Every operation shows its request examples as curl commands; /openapi.json serves the same document
to tools that want it (Swagger UI, Postman, client generators).
"""

from __future__ import annotations

import html
import re
import shlex
from typing import Any

import orjson

CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                           "form-action 'none'; frame-ancestors 'none'")
METHODS = ("get", "post", "put", "patch", "delete", "head")
SCHEMA_REF = re.compile(r"&quot;#/components/schemas/([A-Za-z0-9_.-]+)&quot;")
STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #1b1f24; }
h1, h2, h3 { line-height: 1.25; } h2 { border-bottom: 1px solid #d0d7de; padding-top: 1rem; }
code, pre { font: 13px/1.45 ui-monospace, monospace; background: #f6f8fa; }
pre { padding: .75rem; overflow-x: auto; border-radius: 6px; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left; vertical-align: top; }
.method { font-weight: 700; text-transform: uppercase; }
.note { color: #57606a; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def _json_block(value: Any) -> str:
    """Pretty JSON in a <pre>, with each schema reference a link to that schema."""
    text = _e(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())
    return "<pre>" + SCHEMA_REF.sub(
        lambda m: f'<a href="#schema-{m.group(1)}">&quot;#/components/schemas/{m.group(1)}'
                  '&quot;</a>', text) + "</pre>"


def _schema_name(content: dict[str, Any]) -> str:
    ref = (content.get("application/json") or {}).get("schema", {}).get("$ref", "")
    name = ref.rsplit("/", 1)[-1]
    return f'<a href="#schema-{_e(name)}">{_e(name)}</a>' if name else ""


def _secured(operation: dict[str, Any], document: dict[str, Any]) -> bool:
    return bool(operation.get("security", document.get("security")))


def _curl(method: str, path: str, operation: dict[str, Any], body: Any, secured: bool) -> str:
    for parameter in operation.get("parameters", []):
        values = parameter.get("schema", {}).get("enum") or [f"<{parameter['name']}>"]
        path = path.replace("{" + parameter["name"] + "}", str(values[0]))
    words = ["curl", "-X", method.upper(), f'"$URL{path}"']
    if secured:
        words += ["-H", '"Authorization: Bearer $API_KEY"']
    if body is not None:
        words += ["-H", shlex.quote("Content-Type: application/json"),
                  "-d", shlex.quote(orjson.dumps(body).decode())]
    return " ".join(words)


def _operation(method: str, path: str, operation: dict[str, Any],
               document: dict[str, Any]) -> list[str]:
    secured = _secured(operation, document)
    parts = [f'<h3 id="op-{_e(operation.get("operationId", path))}"><span class="method">'
             f'{_e(method)}</span> <code>{_e(path)}</code></h3>',
             f"<p>{_e(operation.get('summary', ''))}"
             + (" <span class=\"note\">(API key)</span>" if secured else "") + "</p>"]
    if operation.get("description"):
        parts.append(f"<p>{_e(operation['description'])}</p>")
    parameters = operation.get("parameters", [])
    if parameters:
        parts.append("<p>Path parameters: " + ", ".join(
            f"<code>{_e(p['name'])}</code> = " + " | ".join(
                f"<code>{_e(v)}</code>" for v in p.get("schema", {}).get("enum", ["…"]))
            for p in parameters) + "</p>")
    request = operation.get("requestBody")
    if request:
        content = request.get("content", {})
        parts.append(f"<p>Body ({_schema_name(content)}): {_e(request.get('description', ''))}"
                     "</p>")
        examples = (content.get("application/json") or {}).get("examples", {})
        for name, example in examples.items():
            parts.append(f"<p class=\"note\">Example, {_e(name)}:</p>")
            parts.append(f"<pre>{_e(_curl(method, path, operation, example['value'], secured))}"
                         "</pre>")
    elif method == "get":
        parts.append(f"<pre>{_e(_curl(method, path, operation, None, secured))}</pre>")
    rows = "".join(f"<tr><td>{_e(status)}</td><td>{_e(answer.get('description', ''))}</td>"
                   f"<td>{_schema_name(answer.get('content', {}))}</td></tr>"
                   for status, answer in operation.get("responses", {}).items())
    parts.append(f"<table><tr><th>status</th><th>meaning</th><th>body</th></tr>{rows}</table>")
    return parts


def _features(schemas: dict[str, Any]) -> list[str]:
    features = schemas.get("FeatureObject")
    if not features:
        return []
    rows = []
    for name, spec in features.get("properties", {}).items():
        allowed = ", ".join(_e(v) for v in spec.get("enum", [])) or "any"
        example = spec.get("examples", [""])[0]
        rows.append(f"<tr><td><code>{_e(name)}</code></td><td>{_e(spec.get('type', ''))}</td>"
                    f"<td>{allowed}</td><td><code>{_e(orjson.dumps(example).decode())}</code>"
                    f"</td><td>{_e(spec.get('description', ''))}</td></tr>")
    return ['<h2 id="features">Features</h2>',
            "<p>Send them by name (an object) or in this order (a list).</p>",
            "<table><tr><th>feature</th><th>type</th><th>values</th><th>example</th>"
            f"<th>about</th></tr>{''.join(rows)}</table>"]


def reference_page(document: dict[str, Any], openapi_url: str = "openapi.json") -> str:
    """The HTML reference of an OpenAPI document, self-contained."""
    info = document.get("info", {})
    title = f"{info.get('title', 'API')} - API reference"
    operations = [(method, path, operation) for path, item in document.get("paths", {}).items()
                  for method, operation in item.items() if method in METHODS]
    schemas = document.get("components", {}).get("schemas", {})
    body = [f"<h1>{_e(title)}</h1>", f"<p>{_e(info.get('description', ''))}</p>",
            f'<p class="note">The same, for tools: <a href="{_e(openapi_url)}">{_e(openapi_url)}'
            "</a> (OpenAPI " + _e(document.get("openapi", "")) + "). The examples call the "
            "server at <code>$URL</code>, e.g. <code>URL=http://127.0.0.1:8000</code>.</p>"]
    if document.get("components", {}).get("securitySchemes"):
        body.append("<p>Routes marked <em>API key</em> need <code>Authorization: Bearer "
                    "&lt;key&gt;</code> or <code>X-API-Key: &lt;key&gt;</code>; without it they "
                    "answer 401.</p>")
    body.append('<h2 id="routes">Routes</h2><table><tr><th>method</th><th>path</th>'
                "<th>what</th></tr>" + "".join(
                    f'<tr><td class="method">{_e(m)}</td><td><a href="#op-'
                    f'{_e(o.get("operationId", p))}"><code>{_e(p)}</code></a></td>'
                    f"<td>{_e(o.get('summary', ''))}</td></tr>" for m, p, o in operations)
                + "</table>")
    body += _features(schemas)
    body.append('<h2 id="operations">Operations</h2>')
    for method, path, operation in operations:
        body += _operation(method, path, operation, document)
    body.append('<h2 id="schemas">Schemas</h2>')
    for name, schema in schemas.items():
        body += [f'<h3 id="schema-{_e(name)}">{_e(name)}</h3>', _json_block(schema)]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
