"""The deployment shape real teams use, in the local cloud (LocalCloud(tls=True)), through real
interfaces only: boto3 over HTTP to the cloud, DNS over UDP and TCP on loopback (dnspython), and
HTTPS verified against the cloud's CA bundle (requests verify=bundle, never verify=False).

- DNS answers over TCP as over UDP, several queries per connection, ANY included.
- Alias A records answer with addresses only (no CNAME), in DNS and in TestDNSAnswer.
- TestDNSAnswer honours EDNS0ClientSubnetIP/Mask (default /24), and so does the DNS server.
- A CNAME at the zone apex is refused (InvalidChangeBatch), the whole batch.
- HTTPS with SNI: the custom domain's ACM certificate, the execute-api hosts' wildcard, no
  SNI -> no handshake; base path mappings; 403 Forbidden for a Host with no domain or API.
- ACM certificates are signed by the cloud's CA; CreateDomainName checks its certificate.
- Health checks probe over HTTPS with SNI on each region's execute-api host.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import struct
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import botocore.exceptions
import dns.edns
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
import requests
from cryptography import x509
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from gameday.localcloud.process.launcher import LocalCloud
from tests.support.lambda_updates import update_configuration

REGIONS = ["eu-west-1", "us-east-1"]


@pytest.fixture(scope="module")
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud(regions=REGIONS, tls=True) as running:
        yield running


@pytest.fixture(scope="module")
def desc(cloud: LocalCloud) -> dict[str, Any]:
    return cloud.description


def client(desc: dict[str, Any], service: str, region: str = "us-east-1") -> Any:
    return boto3.client(service, region_name=region, endpoint_url=desc["aws_endpoint_url"],
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def dns_server(desc: dict[str, Any]) -> tuple[str, int]:
    host, port = desc["dns_resolver"].rsplit(":", 1)
    return host, int(port)


def region(desc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in desc["regions"] if r["name"] == name)


def a_records(response: dns.message.Message) -> list[str]:
    return [item.address for rrset in response.answer if rrset.rdtype == dns.rdatatype.A for item in rrset]


def answer_types(response: dns.message.Message) -> set[str]:
    return {dns.rdatatype.to_text(rrset.rdtype) for rrset in response.answer}


@contextmanager
def resolving_through_cloud(desc: dict[str, Any], pinned: dict[str, str] | None = None) -> Iterator[None]:
    """Host names resolved by the cloud's DNS server (what a resolver pointed at it does);
    `pinned`: names to send to a fixed address (curl --resolve)."""
    original = socket.getaddrinfo
    host, port = dns_server(desc)

    def lookup(name: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(name, str) and pinned and name in pinned:
            return original(pinned[name], *args, **kwargs)
        if isinstance(name, str) and (name.endswith(".test") or name.endswith(".amazonaws.com")):
            addresses = a_records(dns.query.udp(dns.message.make_query(name, "A"), host, port=port, timeout=2))
            if not addresses:
                raise socket.gaierror(socket.EAI_NONAME, f"{name}: no A record")
            return original(addresses[0], *args, **kwargs)
        return original(name, *args, **kwargs)

    with mock.patch("socket.getaddrinfo", lookup):
        yield


# ------------------------------------------------------------------ DNS over TCP, alias records

def test_dns_answers_over_tcp_as_over_udp(desc: dict[str, Any]) -> None:
    host, port = dns_server(desc)
    query = dns.message.make_query(desc["domain"], "A")
    over_udp = dns.query.udp(query, host, port=port, timeout=3)
    over_tcp = dns.query.tcp(query, host, port=port, timeout=3)
    assert over_tcp.rcode() == dns.rcode.NOERROR
    assert a_records(over_tcp) == a_records(over_udp) == [region(desc, "eu-west-1")["address"]]
    anything = dns.query.tcp(dns.message.make_query(desc["domain"], "ANY"), host, port=port, timeout=3)
    assert a_records(anything) == a_records(over_udp)


def test_one_tcp_connection_carries_several_queries(desc: dict[str, Any]) -> None:
    host, port = dns_server(desc)
    names = [desc["domain"], region(desc, "us-east-1")["api_host"]]
    with socket.create_connection((host, port), timeout=3) as sock:
        for name in names:
            wire = dns.message.make_query(name, "A").to_wire()
            sock.sendall(struct.pack("!H", len(wire)) + wire)
        replies = []
        for _ in names:
            (length,) = struct.unpack("!H", _recv(sock, 2))
            replies.append(dns.message.from_wire(_recv(sock, length)))
    assert a_records(replies[0]) == [region(desc, "eu-west-1")["address"]]
    assert a_records(replies[1]) == [region(desc, "us-east-1")["address"]]


def _recv(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "the server closed the connection"
        data += chunk
    return data


def test_alias_records_answer_addresses_only(desc: dict[str, Any]) -> None:
    host, port = dns_server(desc)
    for query in (dns.query.udp, dns.query.tcp):
        response = query(dns.message.make_query(desc["domain"], "A"), host, port=port, timeout=3)
        assert answer_types(response) == {"A"}     # no CNAME names the region
        assert not any("execute-api" in str(rrset) for rrset in response.answer)
        cname = query(dns.message.make_query(desc["domain"], "CNAME"), host, port=port, timeout=3)
        assert cname.rcode() == dns.rcode.NOERROR and not cname.answer
    r53 = client(desc, "route53")
    records = r53.list_resource_record_sets(HostedZoneId=desc["hosted_zone_id"])["ResourceRecordSets"]
    aliases = [r for r in records if r["Name"].rstrip(".") == desc["domain"]]
    assert {r["Type"] for r in aliases} == {"A"}
    by_region = {r["SetIdentifier"]: r for r in aliases}
    for entry in desc["regions"]:
        record = by_region[entry["name"]]
        assert record["AliasTarget"]["DNSName"].rstrip(".") == entry["regional_domain_name"]
        assert record["AliasTarget"]["EvaluateTargetHealth"] is True
        assert record["HealthCheckId"] == entry["health_check_id"]
        assert "TTL" not in record
    answer = r53.test_dns_answer(HostedZoneId=desc["hosted_zone_id"], RecordName=desc["domain"], RecordType="A")
    assert answer["RecordData"] == [region(desc, "eu-west-1")["address"]]
    cname_answer = r53.test_dns_answer(HostedZoneId=desc["hosted_zone_id"], RecordName=desc["domain"],
                                       RecordType="CNAME")
    assert cname_answer["RecordData"] == []


# ------------------------------------------------------------------ EDNS0 client subnet

@pytest.fixture(scope="module")
def latency_zone(desc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """A zone with latency alias records to both regions' regional domain names (no health checks)."""
    r53 = client(desc, "route53")
    zone_id = r53.create_hosted_zone(Name="latency.test", CallerReference="latency-zone")["HostedZone"]["Id"]
    name = "api.latency.test."
    changes = [{"Action": "CREATE", "ResourceRecordSet": {
        "Name": name, "Type": "A", "SetIdentifier": entry["name"], "Region": entry["name"],
        "AliasTarget": {"DNSName": entry["regional_domain_name"], "HostedZoneId": "Z1UJRXOUMOOFQ8",
                        "EvaluateTargetHealth": True}}} for entry in desc["regions"]]
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
    try:
        yield zone_id, name
    finally:
        r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
            "Changes": [{**c, "Action": "DELETE"} for c in changes]})
        r53.delete_hosted_zone(Id=zone_id)


def test_test_dns_answer_honours_the_client_subnet_and_its_mask(desc: dict[str, Any],
                                                                 latency_zone: tuple[str, str]) -> None:
    zone_id, name = latency_zone
    r53 = client(desc, "route53")

    def answer(**kwargs: Any) -> list[str]:
        return r53.test_dns_answer(HostedZoneId=zone_id, RecordName=name, RecordType="A", **kwargs)["RecordData"]

    eu, us = region(desc, "eu-west-1"), region(desc, "us-east-1")
    for entry in (eu, us):
        assert answer(EDNS0ClientSubnetIP=entry["client_address"]) == [entry["address"]]          # default /24
        assert answer(EDNS0ClientSubnetIP=entry["client_address"], EDNS0ClientSubnetMask="24") == [entry["address"]]
        host_in_network = entry["client_network"].rsplit(".", 1)[0] + ".200"
        assert answer(EDNS0ClientSubnetIP=host_in_network) == [entry["address"]]
    # Only the first `mask` bits count: us-east-1's data-plane address as a /24 is the /24 that holds
    # every region's data-plane address, which locates no region (the first region answers) ...
    assert answer(EDNS0ClientSubnetIP=us["address"]) == [eu["address"]]
    # ... while the same address as a /32 is us-east-1's.
    assert answer(EDNS0ClientSubnetIP=us["address"], EDNS0ClientSubnetMask="32") == [us["address"]]
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidInput"):
        answer(EDNS0ClientSubnetIP=us["client_address"], EDNS0ClientSubnetMask="33")


def test_dns_server_honours_the_edns0_client_subnet(desc: dict[str, Any], latency_zone: tuple[str, str]) -> None:
    _, name = latency_zone
    host, port = dns_server(desc)
    for entry in desc["regions"]:
        for query in (dns.query.udp, dns.query.tcp):
            message = dns.message.make_query(name, "A", use_edns=0,
                                             options=[dns.edns.ECSOption(entry["client_address"], 24)])
            response = query(message, host, port=port, timeout=3)
            assert a_records(response) == [entry["address"]]
            (echo,) = [o for o in response.options if isinstance(o, dns.edns.ECSOption)]
            assert echo.srclen == 24 and echo.scopelen == 24
    # Source prefix 0: "do not use my subnet": the query's source (127.0.0.1, no region) decides.
    message = dns.message.make_query(name, "A", use_edns=0,
                                     options=[dns.edns.ECSOption(region(desc, "us-east-1")["client_address"], 0)])
    assert a_records(dns.query.udp(message, host, port=port, timeout=3)) == [region(desc, "eu-west-1")["address"]]


def test_a_cname_at_the_zone_apex_is_refused_with_its_batch(desc: dict[str, Any]) -> None:
    r53 = client(desc, "route53")
    zone_id = r53.create_hosted_zone(Name="apex.test", CallerReference="apex-zone")["HostedZone"]["Id"]
    try:
        fine = {"Action": "CREATE", "ResourceRecordSet": {"Name": "www.apex.test.", "Type": "CNAME", "TTL": 60,
                                                          "ResourceRecords": [{"Value": "example.org"}]}}
        apex = {"Action": "CREATE", "ResourceRecordSet": {"Name": "apex.test.", "Type": "CNAME", "TTL": 60,
                                                          "ResourceRecords": [{"Value": "example.org"}]}}
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [fine, apex]})
        assert raised.value.response["Error"]["Code"] == "InvalidChangeBatch"
        assert "not permitted at apex" in raised.value.response["Error"]["Message"]
        names = {r["Name"] for r in r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]}
        assert "www.apex.test." not in names      # nothing of the batch was applied
        r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [fine]})
        r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
            "Changes": [{**fine, "Action": "DELETE"}]})
    finally:
        r53.delete_hosted_zone(Id=zone_id)


# ------------------------------------------------------------------ HTTPS

def test_custom_domain_over_https_verified_against_the_bundle(desc: dict[str, Any]) -> None:
    bundle = desc["ca_bundle"]
    assert Path(bundle).is_file()
    with resolving_through_cloud(desc):
        health = requests.get(desc["global_url"] + "/health", verify=bundle, timeout=10)
        assert health.status_code == 200
        item = requests.post(desc["global_url"] + "/item", json={"id": 4242, "name": "tls"}, verify=bundle, timeout=10)
        assert item.status_code == 200, item.text
        # the base path mapping takes the path as the stage's resource path: no stage prefix
        staged = requests.get(desc["global_url"] + "/prod/health", verify=bundle, timeout=10)
        assert staged.status_code == 403
        for entry in desc["regions"]:
            assert desc["regions"] and entry["api_url"].startswith("https://")
            regional = requests.get(entry["api_url"] + "/health", verify=bundle, timeout=10)
            assert regional.status_code == 200


def test_a_host_without_custom_domain_or_api_is_forbidden(desc: dict[str, Any]) -> None:
    bundle = desc["ca_bundle"]
    eu, us = region(desc, "eu-west-1"), region(desc, "us-east-1")
    with resolving_through_cloud(desc):
        # TLS for the custom domain, then a Host the region has no custom domain for
        response = requests.get(desc["global_url"] + "/health", headers={"Host": "other.gameday.test"},
                                verify=bundle, timeout=10)
        assert response.status_code == 403 and response.json() == {"message": "Forbidden"}
        # on this region's address, another region's API host, or an API this region does not have
        port = desc["global_url"].rsplit(":", 1)[1]
        for wrong in (us["api_host"], f"nope0api.execute-api.{eu['name']}.amazonaws.com"):
            response = requests.get(eu["api_url"] + "/health", headers={"Host": f"{wrong}:{port}"},
                                    verify=bundle, timeout=10)
            assert response.status_code == 403 and response.json() == {"message": "Forbidden"}


def test_a_name_with_no_certificate_fails_verification_and_no_sni_fails_the_handshake(desc: dict[str, Any]) -> None:
    bundle = desc["ca_bundle"]
    eu = region(desc, "eu-west-1")
    port = int(desc["global_url"].rsplit(":", 1)[1])
    # a CNAME straight to the execute-api host: that host's certificate does not cover the custom name
    with resolving_through_cloud(desc, pinned={"cname.gameday.test": eu["address"]}):
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"https://cname.gameday.test:{port}/health", verify=bundle, timeout=10)
    context = ssl.create_default_context(cafile=bundle)
    context.check_hostname = False
    with socket.create_connection((eu["address"], port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with context.wrap_socket(raw) as tls:    # no server_hostname: no SNI
                tls.sendall(b"GET /prod/health HTTP/1.1\r\nHost: x\r\n\r\n")
                tls.recv(1)


def test_the_custom_domain_serves_its_acm_certificate(desc: dict[str, Any]) -> None:
    eu = region(desc, "eu-west-1")
    port = int(desc["global_url"].rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=desc["ca_bundle"])
    with socket.create_connection((eu["address"], port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=desc["domain"]) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    served = x509.load_der_x509_certificate(der)
    domain = client(desc, "apigateway", "eu-west-1").get_domain_name(domainName=desc["domain"])
    assert domain["regionalDomainName"] == eu["regional_domain_name"]
    acm_cert = client(desc, "acm", "eu-west-1").get_certificate(CertificateArn=domain["regionalCertificateArn"])
    assert x509.load_pem_x509_certificate(acm_cert["Certificate"].encode()) == served
    described = client(desc, "acm", "eu-west-1").describe_certificate(
        CertificateArn=domain["regionalCertificateArn"])["Certificate"]
    assert described["Status"] == "ISSUED" and described["DomainName"] == desc["domain"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_with_the_bundle(desc: dict[str, Any]) -> None:
    eu = region(desc, "eu-west-1")
    port = desc["global_url"].rsplit(":", 1)[1]
    done = subprocess.run(["curl", "-sS", "--fail", "--cacert", desc["ca_bundle"],
                           "--resolve", f"{desc['domain']}:{port}:{eu['address']}", desc["global_url"] + "/health"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------ ACM and API Gateway through the API

def test_requested_certificates_are_signed_by_the_cloud_ca(desc: dict[str, Any]) -> None:
    acm = client(desc, "acm", "us-east-1")
    arn = acm.request_certificate(DomainName="v2.gameday.test", ValidationMethod="DNS")["CertificateArn"]
    assert acm.describe_certificate(CertificateArn=arn)["Certificate"]["Status"] == "ISSUED"
    leaf = x509.load_pem_x509_certificate(acm.get_certificate(CertificateArn=arn)["Certificate"].encode())
    ca = x509.load_pem_x509_certificate(Path(desc["ca_bundle"]).read_bytes())
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert names == ["v2.gameday.test"]


def test_custom_domain_made_through_the_api_routes_by_its_base_path(desc: dict[str, Any]) -> None:
    us = region(desc, "us-east-1")
    apigw = client(desc, "apigateway", "us-east-1")
    acm = client(desc, "acm", "us-east-1")
    name = "mapped.gameday.test"
    with pytest.raises(botocore.exceptions.ClientError, match="BadRequestException"):
        apigw.create_domain_name(domainName=name, endpointConfiguration={"types": ["REGIONAL"]},
                                 regionalCertificateArn="arn:aws:acm:us-east-1:123456789012:certificate/nope")
    other = acm.request_certificate(DomainName="unrelated.gameday.test")["CertificateArn"]
    with pytest.raises(botocore.exceptions.ClientError, match="not valid for the domain name"):
        apigw.create_domain_name(domainName=name, endpointConfiguration={"types": ["REGIONAL"]},
                                 regionalCertificateArn=other)
    arn = acm.request_certificate(DomainName=name)["CertificateArn"]
    created = apigw.create_domain_name(domainName=name, endpointConfiguration={"types": ["REGIONAL"]},
                                       regionalCertificateArn=arn)
    assert created["regionalDomainName"].endswith(".execute-api.us-east-1.amazonaws.com")
    apigw.create_base_path_mapping(domainName=name, restApiId=us["api_id"], basePath="v2", stage="prod")
    port = desc["global_url"].rsplit(":", 1)[1]
    try:
        with resolving_through_cloud(desc, pinned={name: us["address"]}):
            for attempt in Retrying(stop=stop_after_delay(5), wait=wait_fixed(0.1), reraise=True,
                                    retry=retry_if_exception_type(AssertionError)):
                with attempt:
                    response = requests.get(f"https://{name}:{port}/v2/health", verify=desc["ca_bundle"], timeout=10)
                    assert response.status_code == 200
            unmapped = requests.get(f"https://{name}:{port}/health", verify=desc["ca_bundle"], timeout=10)
            assert unmapped.status_code == 403 and unmapped.json() == {"message": "Forbidden"}
    finally:
        apigw.delete_base_path_mapping(domainName=name, basePath="v2")
        apigw.delete_domain_name(domainName=name)


# ------------------------------------------------------------------ health checks over HTTPS

def test_health_checks_probe_the_execute_api_hosts_over_https_with_sni(desc: dict[str, Any]) -> None:
    r53 = client(desc, "route53")
    port = int(desc["global_url"].rsplit(":", 1)[1])
    for entry in desc["regions"]:
        config = r53.get_health_check(HealthCheckId=entry["health_check_id"])["HealthCheck"]["HealthCheckConfig"]
        assert config["Type"] == "HTTPS" and config["EnableSNI"] is True
        assert config["FullyQualifiedDomainName"] == entry["api_host"]
        assert config["ResourcePath"] == "/prod/health" and config["Port"] == port
        for attempt in Retrying(stop=stop_after_delay(10), wait=wait_fixed(0.2), reraise=True,
                                retry=retry_if_exception_type(AssertionError)):
            with attempt:
                observations = r53.get_health_check_status(
                    HealthCheckId=entry["health_check_id"])["HealthCheckObservations"]
                statuses = {o["StatusReport"]["Status"] for o in observations}
                assert statuses == {"Success: HTTP Status Code 200, OK"}, statuses


def test_failover_over_https_checks_moves_the_alias_answer(desc: dict[str, Any]) -> None:
    """The whole loop in this shape: the primary's health fails over HTTPS -> the alias A record
    answers with the secondary's address; restored -> back to the primary."""
    eu, us = region(desc, "eu-west-1"), region(desc, "us-east-1")
    lam = client(desc, "lambda", "eu-west-1")
    r53 = client(desc, "route53")
    function = eu["functions"]["health"]
    original = lam.get_function_configuration(FunctionName=function)["Environment"]["Variables"]

    def answer() -> list[str]:
        return r53.test_dns_answer(HostedZoneId=desc["hosted_zone_id"], RecordName=desc["domain"],
                                   RecordType="A")["RecordData"]

    def wait_for(expected: list[str]) -> None:
        for attempt in Retrying(stop=stop_after_delay(15), wait=wait_fixed(0.1), reraise=True,
                                retry=retry_if_exception_type(AssertionError)):
            with attempt:
                assert answer() == expected

    update_configuration(lam, FunctionName=function, Environment={"Variables": {**original, "status": "500"}})
    try:
        wait_for([us["address"]])
        host, port = dns_server(desc)
        assert a_records(dns.query.tcp(dns.message.make_query(desc["domain"], "A"), host, port=port,
                                       timeout=3)) == [us["address"]]
    finally:
        update_configuration(lam, FunctionName=function, Environment={"Variables": original})
    wait_for([eu["address"]])
