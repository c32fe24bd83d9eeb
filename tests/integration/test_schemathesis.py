"""Schemathesis against the running service's own OpenAPI document, on 127.0.0.1.

The document is read from the service (``/openapi.json``) and every operation in it is driven
with schema-derived requests, valid and deliberately invalid: Schemathesis's coverage phase
(boundary values, missing and wrong-typed fields, undeclared methods) and then up to
MAX_EXAMPLES fuzzed examples per operation, in both its positive and negative modes. The
``image`` part of ``POST /recognize`` is random bytes: it must get a 4xx, never a 5xx.

Every response is checked for: no server error, a status code the document lists, the
documented content type and headers, a body matching the documented schema, schema-violating
input rejected, and a correct answer to undeclared methods (405 with ``Allow``). It runs twice:
with the test tenant's API key, and without one (then 401s must be documented too).

Schemathesis 4.x runs as its CLI in a subprocess: its pytest plugin's lazy schema loading
(``schemathesis.pytest.from_fixture``, needed for a schema served by a fixture) breaks on pytest
9 (``'Function' object has no attribute '_nodeid'`` in 4.32.5). Pinned: schemathesis==4.32.5.
``SCHEMATHESIS_SEED`` and ``SCHEMATHESIS_MAX_EXAMPLES`` override the fixed defaults for a deeper
run (e.g. seed 3 with 200 examples finds the undocumented 400 below within seconds).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import RunningService

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("SCHEMATHESIS_SEED", "20261126"))  # the same requests every run
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "50"))  # fuzzed, per operation
REQUEST_TIMEOUT_S = 30  # the network limit of one request
MAX_RESPONSE_TIME_S = 10  # a check: the demo model answers in ~0.1 s, a 4xx in ~0.01 s
RUN_TIMEOUT_S = 170  # the whole run; it takes ~5 s here

CONFORMANCE = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
]
CHECKS = {
    # positive_data_acceptance is left out on purpose: schema-valid requests carry random bytes
    # as the photo, and rejecting those (422 invalid_image) is right.
    "with the API key": [
        *CONFORMANCE,
        "negative_data_rejection",
        "missing_required_header",
        "unsupported_method",
        "allow_header_conformance",
        "ignored_auth",  # once the document declares its security scheme (see the last test)
    ],
    "without an API key": CONFORMANCE,
}


@dataclass
class Run:
    returncode: int
    output: str
    failures: dict[str, list[str]]  # "METHOD /path" -> failure reports (empty when it passed)


def operations(document: dict) -> set[str]:
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    return {
        f"{method.upper()} {path}"
        for path, item in document.get("paths", {}).items()
        for method in item
        if method in methods
    }


@pytest.fixture(scope="module")
def live_document(
    service: RunningService, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict]:
    """The service's own OpenAPI document, fetched from it (with the key, in case it is closed)."""
    if importlib.util.find_spec("schemathesis") is None:
        pytest.fail("schemathesis is not installed: pip install schemathesis==4.32.5")
    assert service.base_url.startswith("http://127.0.0.1:"), service.base_url
    with service.client() as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200, response.text[:300]
    document = response.json()
    path = tmp_path_factory.mktemp("schemathesis") / "openapi.json"
    path.write_text(json.dumps(document))
    return path, document


def run_schemathesis(
    service: RunningService, schema: Path, *, checks: list[str], with_key: bool, workdir: Path
) -> Run:
    junit = workdir / "junit.xml"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        str(schema),
        "--url",
        service.base_url,
        "--checks",
        ",".join(checks),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--request-timeout",
        str(REQUEST_TIMEOUT_S),
        "--max-response-time",
        str(MAX_RESPONSE_TIME_S),
        "--workers",
        "1",
        "--continue-on-failure",
        "--report",
        "junit",
        "--report-junit-path",
        str(junit),
        "--no-color",
    ]
    api_key = getattr(service, "api_key", None)
    if with_key and api_key:
        command += ["--header", f"Authorization: Bearer {api_key}"]
    done = subprocess.run(
        command,
        cwd=workdir,  # Schemathesis writes nothing into the repository
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    output = done.stdout + done.stderr
    failures: dict[str, list[str]] = {}
    if junit.is_file():
        for testcase in ET.parse(junit).getroot().iter("testcase"):
            reports = [
                (element.text or element.get("message") or "").strip()
                for element in testcase
                if element.tag in ("failure", "error")
            ]
            failures[testcase.get("name", "?")] = reports
    return Run(done.returncode, output, failures)


@pytest.mark.parametrize("kind", list(CHECKS))
def test_schemathesis_finds_nothing(
    service: RunningService,
    live_document: tuple[Path, dict],
    tmp_path: Path,
    kind: str,
) -> None:
    schema, document = live_document
    run = run_schemathesis(
        service, schema, checks=CHECKS[kind], with_key=kind == "with the API key", workdir=tmp_path
    )
    print(f"\nschemathesis ({kind}):\n{run.output[-3000:]}")
    assert run.failures, f"no JUnit report (exit {run.returncode}):\n{run.output[-3000:]}"
    untested = operations(document) - set(run.failures)
    assert not untested, f"operations of the document Schemathesis did not test: {untested}"
    failed = {op: reports for op, reports in run.failures.items() if reports}
    assert not failed, "\n\n".join(
        f"=== {op} ===\n" + "\n---\n".join(reports) for op, reports in sorted(failed.items())
    )
    assert run.returncode == 0, run.output[-3000:]
    # and the service is still serving
    with service.client() as client:
        assert client.get("/readyz").status_code == 200


def test_the_document_declares_how_to_authenticate(
    service: RunningService, live_document: tuple[Path, dict]
) -> None:
    """A client generated from the document must learn that it needs a key.

    Only meaningful while the service requires keys (the test service does).
    """
    if not getattr(service, "api_key", None):
        pytest.skip("authentication is switched off in this service")
    _, document = live_document
    with httpx.Client(base_url=service.base_url, timeout=30) as anonymous:
        protected = anonymous.post("/recognize").status_code == 401
    assert protected, "POST /recognize answers without a key"
    schemes = document.get("components", {}).get("securitySchemes", {})
    assert schemes, "the OpenAPI document declares no securitySchemes (Bearer / X-API-Key)"
    recognize = document["paths"]["/recognize"]["post"]
    assert recognize.get("security") or document.get("security"), (
        "POST /recognize requires a key but its operation declares no security requirement"
    )
