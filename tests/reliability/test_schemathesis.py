"""schemathesis against the OpenAPI documents of all three services of a real balancer.

The balancer runs with an API key (the documents declare it; ``ignored_auth`` proves every route
but ``/health`` refuses a missing or wrong key), no agents and no buffer, so every request that
passes validation ends at once: token requests with the overflow error, embedding requests with
the 501 of a cluster in token mode. Response bodies are not described in the documents, so the
conformance checks on them are left out; what is checked is that no input is a server error,
that schema-invalid bodies are refused, and the HTTP basics around methods and headers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import CheckContext, Response
from schemathesis.specs.openapi import checks
from schemathesis.specs.openapi.schemas import OpenApiSchema

from paddler_tui.api_key import API_KEY_ENV
from tests.support.cluster import BalancerProcess, Cluster, deterministic_state

if TYPE_CHECKING:
    # Only a name for type checkers: the OpenAPI flavour of schemathesis's generic Case.
    from schemathesis.specs.openapi.schemas import OpenApiCase

pytestmark = pytest.mark.slow

# The routes a token-mode cluster refuses with 501 by design (Paddler's status).
DISABLED_IN_TOKEN_MODE = {"/api/v1/generate_embedding_batch", "/v1/embeddings"}


@schemathesis.check
def no_server_error(ctx: CheckContext, response: Response, case: OpenApiCase) -> None:
    status = response.status_code
    refused_by_mode = status == 501 and case.operation.path in DISABLED_IN_TOKEN_MODE
    if status >= 500 and not refused_by_mode:
        raise AssertionError(f"{status}: {response.text[:300]}")


CHECKS = [
    no_server_error,
    checks.negative_data_rejection,
    checks.response_headers_conformance,
    checks.missing_required_header,
    checks.unsupported_method,
    checks.ignored_auth,
]
EXAMPLES = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


class Services:
    def __init__(self, balancer: BalancerProcess) -> None:
        self.headers = balancer.headers
        self.urls = {
            "inference": balancer.inference_url,
            "management": balancer.management_url,
            "openai": balancer.openai_url,
        }

    def schema(self, service: str) -> OpenApiSchema:
        return schemathesis.openapi.from_url(
            f"{self.urls[service]}/openapi.json", headers=self.headers
        )


@pytest.fixture(scope="module")
def services(make_module_cluster: Callable[[str], Cluster]) -> Services:
    cluster = make_module_cluster("schemathesis")
    cluster.env[API_KEY_ENV] = "schemathesis-key"
    cluster.start_balancer("--max-buffered-requests", "0", openai=True)
    cluster.put_state(deterministic_state())
    return Services(cluster.b)


@pytest.fixture(scope="module")
def inference_schema(services: Services) -> OpenApiSchema:
    return services.schema("inference")


@pytest.fixture(scope="module")
def management_schema(services: Services) -> OpenApiSchema:
    return services.schema("management")


@pytest.fixture(scope="module")
def openai_schema(services: Services) -> OpenApiSchema:
    return services.schema("openai")


inference = schemathesis.pytest.from_fixture("inference_schema")
# The SSE streams never end; the fuzz tests cover them.
management = schemathesis.pytest.from_fixture("management_schema").exclude(path_regex="/stream$")
openai = schemathesis.pytest.from_fixture("openai_schema")


@inference.parametrize()
@EXAMPLES
def test_inference_service(case: OpenApiCase, services: Services) -> None:
    case.call_and_validate(headers=services.headers, timeout=10, checks=CHECKS)


@management.parametrize()
@EXAMPLES
def test_management_service(case: OpenApiCase, services: Services) -> None:
    case.call_and_validate(headers=services.headers, timeout=10, checks=CHECKS)


@openai.parametrize()
@EXAMPLES
def test_openai_service(case: OpenApiCase, services: Services) -> None:
    case.call_and_validate(headers=services.headers, timeout=10, checks=CHECKS)
