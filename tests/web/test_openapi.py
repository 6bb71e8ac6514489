"""The OpenAPI document describes exactly the API the app serves."""

from __future__ import annotations

import re

import yaml
from flask import Flask
from flask.testing import FlaskClient

from esl_callback.web.api import PREFIX
from esl_callback.web.operator_api import TRIGGERS

METHODS = {"get", "post", "put", "delete", "patch"}


def served(app: Flask) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix(PREFIX))
        path = re.sub(r"\{\w*id\}", "{id}", path)
        for method in rule.methods & {m.upper() for m in METHODS}:
            routes.add((method.lower(), path))
    return routes


def documented(document: dict) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in METHODS
    }


def test_every_served_endpoint_is_documented_and_nothing_else(
    app: Flask, client: FlaskClient
) -> None:
    response = client.get("/api/v1/openapi.yaml")
    assert response.status_code == 200
    document = yaml.safe_load(response.text)
    assert document["openapi"].startswith("3.")
    assert served(app) == documented(document)


def test_every_reference_in_the_document_resolves(client: FlaskClient) -> None:
    text = client.get("/api/v1/openapi.yaml").text
    document = yaml.safe_load(text)
    for reference in set(re.findall(r'\$ref: "#/([^"]+)"', text)):
        node = document
        for part in reference.split("/"):
            assert part in node, f"unresolved $ref #/{reference}"
            node = node[part]


def request_fields(document: dict, path: str) -> dict:
    schema = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    return schema["schema"]["properties"]


def test_only_the_operator_api_documents_a_trigger_for_the_requests_it_starts(
    client: FlaskClient,
) -> None:
    """A user's callback is always recorded as triggered from the web; the operator says which."""
    document = yaml.safe_load(client.get("/api/v1/openapi.yaml").text)
    assert set(request_fields(document, "/requests")) == {"source", "destination", "mode"}
    trigger = request_fields(document, "/operator/requests")["trigger"]
    assert (trigger["enum"], trigger["default"]) == (list(TRIGGERS), "cli")
