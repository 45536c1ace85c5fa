"""The harness on deployments shaped as AWS gives them: HTTPS verified against the deployment's CA
bundle, alias A records that answer addresses only, responses that never name their region.

Each of these failed on the harness that read regions from CNAMEs and a handler's header and
spoke plain HTTP:
- HTTPS to the global domain, pinned to the resolved address, is verified against `ca_bundle`
  (a certificate from another CA is refused; verification cannot be turned off);
- a server's region comes from the address the request went to, never from its header;
- on A-record answers the old shift check passed on its first poll without seeing any change:
  now an answer that maps to no region is no shift, and steady state says so.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from gameday.errors import Category, UsageError
from gameday.load.global_client import GlobalClient, GlobalRequestError
from gameday.localcloud.tls.ca import LocalCA, server_context
from gameday.observe import dns_answers
from gameday.observe.resolver import Resolution, Resolver

DOMAIN = "api.gameday.test"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        data = json.dumps({"host": self.headers.get("Host")}).encode()
        self.send_response(500 if self.path.endswith("/boom") else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


class _FixedResolver(Resolver):
    """DOMAIN -> one address, as an alias A record answers (no CNAME names the region)."""

    def __init__(self, address: str) -> None:
        super().__init__("127.0.0.1:53", cache=False)
        self.address = address

    def query(self, name: str, *, client_address: str | None = None) -> Resolution:
        return Resolution(name, (self.address,), 60, (), 0.0, 0.0)


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    work = tmp_path_factory.mktemp("tls")
    ca = LocalCA(work / "ca")
    cert, key = ca.write(ca.issue([DOMAIN]), "domain")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.socket = server_context(cert, key).wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    other = LocalCA(work / "other")
    try:
        yield SimpleNamespace(port=httpd.server_address[1], bundle=str(ca.bundle_path),
                              other_bundle=str(other.bundle_path))
    finally:
        httpd.shutdown()
        httpd.server_close()


def _client(server: SimpleNamespace, verify: str | bool, **kwargs: object) -> GlobalClient:
    return GlobalClient(f"https://{DOMAIN}:{server.port}/prod", _FixedResolver("127.0.0.1"), verify=verify,
                        timeout=(2.0, 5.0), **kwargs)  # type: ignore[arg-type]


def test_https_is_verified_against_the_bundle_with_the_domain_as_sni_and_host(https_server) -> None:
    with _client(https_server, https_server.bundle) as client:
        answer = client.get("/health")
    assert answer.status == 200 and answer.address == "127.0.0.1"
    assert answer.json() == {"host": DOMAIN}


def test_a_certificate_from_another_ca_is_refused(https_server) -> None:
    with _client(https_server, https_server.other_bundle) as client, pytest.raises(GlobalRequestError) as caught:
        client.get("/health")
    assert "SSL" in str(caught.value) or "certificate" in str(caught.value).lower()


def test_verification_cannot_be_turned_off(https_server) -> None:
    with pytest.raises(UsageError, match="cannot be turned off"):
        _client(https_server, False)


def test_a_500_with_no_region_header_is_placed_by_its_address(https_server) -> None:
    with _client(https_server, https_server.bundle,
                 region_of_address={"127.0.0.1": "eu-west-1"}.get) as client:
        answer = client.get("/boom")
    assert answer.status == 500 and answer.header_region is None
    assert answer.region == "eu-west-1" and answer.served_by == "eu-west-1"


# -- regions from what DNS answers -----------------------------------------------------------

def _deployment(tmp_path: Path, **top: object) -> object:
    from gameday.deployment import parse_deployment

    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    regions = [
        {"name": "eu-west-1", "api_url": "https://a1.execute-api.eu-west-1.amazonaws.com/prod",
         "api_host": "a1.execute-api.eu-west-1.amazonaws.com", "health_check_id": "hc-1",
         "regional_domain_name": "d-1.execute-api.eu-west-1.amazonaws.com", "client_address": "10.1.0.1",
         "client_network": "10.1.0.0/24", "failover_role": "PRIMARY"},
        {"name": "us-east-1", "api_url": "https://b2.execute-api.us-east-1.amazonaws.com/prod",
         "api_host": "b2.execute-api.us-east-1.amazonaws.com", "health_check_id": "hc-2",
         "regional_domain_name": "d-2.execute-api.us-east-1.amazonaws.com", "client_address": "10.2.0.1",
         "client_network": "10.2.0.0/24", "failover_role": "SECONDARY"},
    ]
    return parse_deployment({
        "gameday_deployment": 1, "target": "local", "domain": DOMAIN, "global_url": f"https://{DOMAIN}",
        "hosted_zone_id": "Z1", "routing": "failover", "ca_bundle": str(bundle),
        "table": {"name": "T", "version": "2017.11.29"}, "regions": regions, **top})


class _ZoneResolver:
    """Answers each region's own names with its addresses, as the deployment's resolver would."""

    def __init__(self, answers: dict[str, tuple[str, ...]]) -> None:
        self.answers = answers

    def query(self, name: str, *, client_address: str | None = None) -> Resolution:
        from gameday.observe.resolver import DnsResolutionError

        if name not in self.answers:
            raise DnsResolutionError(name, "NXDOMAIN")
        return Resolution(name, self.answers[name], 60, (), 0.0, 0.0)


def test_new_fields_are_read_and_the_bundle_must_be_readable(tmp_path: Path) -> None:
    dep = _deployment(tmp_path)
    assert dep.ca_bundle == str(tmp_path / "ca.pem") and dep.tls_verify == dep.ca_bundle
    assert dep.regions[0].regional_domain_name == "d-1.execute-api.eu-west-1.amazonaws.com"
    assert dep.regions[1].client_network == "10.2.0.0/24"
    with pytest.raises(UsageError, match=r"ca_bundle: expected a readable file"):
        _deployment(tmp_path, ca_bundle=str(tmp_path / "missing.pem"))


def test_a_answers_are_placed_by_the_addresses_dns_gives_each_region(tmp_path: Path) -> None:
    dep = _deployment(tmp_path)
    found = dns_answers.region_map(dep, _ZoneResolver({
        "d-1.execute-api.eu-west-1.amazonaws.com": ("52.1.1.1", "52.1.1.2"),
        "a1.execute-api.eu-west-1.amazonaws.com": ("52.1.1.9",),
        "d-2.execute-api.us-east-1.amazonaws.com": ("34.2.2.2",),
    }), refresh=True)
    assert found.addresses["52.1.1.2"] == "eu-west-1" and found.addresses["34.2.2.2"] == "us-east-1"
    assert dns_answers.regions_in(dep, ["52.1.1.1", "34.2.2.2"]) == ["eu-west-1", "us-east-1"]
    assert dns_answers.mapped_regions(dep, ["52.1.1.2"]) == ["eu-west-1"]
    assert dns_answers.region_of_address(dep, "52.1.1.9") == "eu-west-1"


def test_an_address_two_regions_share_names_neither(tmp_path: Path) -> None:
    dep = _deployment(tmp_path)
    dns_answers.region_map(dep, _ZoneResolver({
        "d-1.execute-api.eu-west-1.amazonaws.com": ("52.0.0.1",),
        "d-2.execute-api.us-east-1.amazonaws.com": ("52.0.0.1",),
    }), refresh=True)
    assert dns_answers.regions_in(dep, ["52.0.0.1"]) == [None]


def test_an_answer_that_maps_to_no_region_fails_steady_state_and_is_never_a_shift(tmp_path: Path) -> None:
    dep = _deployment(tmp_path)
    dns_answers.region_map(dep, _ZoneResolver({}), refresh=True)   # nothing resolves: nothing maps
    answer = ["52.9.9.9"]                                          # what an alias A record gives
    with pytest.raises(dns_answers.UnmappedAnswer) as caught:
        dns_answers.mapped_regions(dep, answer)
    assert caught.value.category == Category.STEADY_STATE and "no answer maps to a region" in str(caught.value)
    # The old check ("eu-west-1 not among the regions named") held on this answer at the first poll,
    # reporting a failover it never saw. An unplaced answer is no shift: the wait runs out instead.
    with pytest.raises(dns_answers.DnsShiftTimeout):
        dns_answers.wait_until_excludes(lambda: answer, dep, "eu-west-1", budget_s=0.2, poll_s=0.05)
    with pytest.raises(dns_answers.DnsShiftTimeout):
        dns_answers.wait_until_excludes(lambda: [], dep, "eu-west-1", budget_s=0.2, poll_s=0.05)
