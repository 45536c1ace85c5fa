"""The refusal of a request in the error shape of the service's own protocol, so that boto3 raises
the ClientError a caller gets from AWS: Lambda AccessDeniedException (403), DynamoDB
AccessDeniedException (400), Route 53, STS, IAM, CloudFormation AccessDenied (403, XML), CloudWatch
AccessDenied (Smithy RPC v2 CBOR with its query-compatible error code)."""

from __future__ import annotations

import json
import uuid
from xml.sax.saxutils import escape

INVALID_TOKEN_MESSAGE = "The security token included in the request is invalid."
QUERY_NAMESPACES = {
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
    "cloudformation": "http://cloudformation.amazonaws.com/doc/2010-05-15/",
    "cloudwatch": "http://monitoring.amazonaws.com/doc/2010-08-01/",
    "route53": "https://route53.amazonaws.com/doc/2013-04-01/",
}

Response = tuple[int, list[tuple[str, str]], bytes]


def access_denied(protocol: str, service: str, message: str, query_compatible: bool = False) -> Response:
    return _error(protocol, service, message, json_code="AccessDeniedException", xml_code="AccessDenied",
                  json_status=400 if protocol == "json" and not query_compatible else 403,
                  query_compatible=query_compatible)


def invalid_token(protocol: str, service: str, query_compatible: bool = False) -> Response:
    return _error(protocol, service, INVALID_TOKEN_MESSAGE, json_code="UnrecognizedClientException",
                  xml_code="InvalidClientTokenId", json_status=400 if protocol == "json" and not query_compatible else 403,
                  query_compatible=query_compatible)


def query_error(service: str, code: str, message: str, status: int) -> Response:
    """Any error of a query-protocol service (IAM's NoSuchEntity 404, InvalidInput 400, ...)."""
    _, headers, body = _error("query", service, message, json_code=code, xml_code=code, json_status=status)
    return status, headers, body


def _error(protocol: str, service: str, message: str, *, json_code: str, xml_code: str, json_status: int,
           query_compatible: bool = False) -> Response:
    """query_compatible: a service that moved from the query protocol (CloudWatch) keeps its query
    error codes in x-amzn-query-error, which boto3 reports as the error code."""
    request_id = str(uuid.uuid4())
    if protocol == "json":
        body = json.dumps({"__type": f"com.amazon.coral.service#{json_code}", "Message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", request_id),
                   ("Content-Length", str(len(body)))]
        if query_compatible:
            headers.append(("x-amzn-query-error", f"{xml_code};Sender"))
        return json_status, headers, body
    if protocol == "rest-json":
        body = json.dumps({"Type": "User", "Message": message, "message": message}).encode()
        return json_status, [("Content-Type", "application/json"), ("x-amzn-ErrorType", json_code),
                             ("x-amzn-RequestId", request_id), ("Content-Length", str(len(body)))], body
    if protocol == "smithy-rpc-v2-cbor":
        body = _cbor_map({"__type": f"com.amazonaws.{service}#{json_code}", "message": message})
        return 403, [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor"),
                     ("x-amzn-query-error", f"{xml_code};Sender"), ("x-amzn-RequestId", request_id),
                     ("Content-Length", str(len(body)))], body
    namespace = QUERY_NAMESPACES.get(service, f"https://{service}.amazonaws.com/doc/")
    text = (f'<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse xmlns="{namespace}"><Error><Type>Sender</Type>'
            f"<Code>{xml_code}</Code><Message>{escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>")
    body = text.encode()
    return 403, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id),
                 ("Content-Length", str(len(body)))], body


def _cbor_head(major: int, length: int) -> bytes:
    if length < 24:
        return bytes([(major << 5) | length])
    if length < 0x100:
        return bytes([(major << 5) | 24, length])
    if length < 0x10000:
        return bytes([(major << 5) | 25]) + length.to_bytes(2, "big")
    return bytes([(major << 5) | 26]) + length.to_bytes(4, "big")


def _cbor_text(text: str) -> bytes:
    data = text.encode("utf-8")
    return _cbor_head(3, len(data)) + data


def _cbor_map(values: dict[str, str]) -> bytes:
    """CBOR (RFC 8949) for a map of text to text: all an error body needs."""
    out = _cbor_head(5, len(values))
    for key, value in values.items():
        out += _cbor_text(key) + _cbor_text(value)
    return out
