"""An authoritative UDP DNS server on loopback for the hosted zones and ctx.names.

Answers come from DnsAnswers (the same evaluation as TestDNSAnswer), so `dig` and
dnspython see the healthy region's address. The client's region for latency records is
taken from the EDNS0 client subnet (echoed back with its scope) or the query's source
address. TTLs on the wire are the records' own (60 s), unscaled, as on AWS.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
import threading
from typing import Any

from dnslib import AAAA, CNAME, EDNS0, MX, NS, QTYPE, RCODE, RD, RR, SOA, TXT, A, DNSRecord, EDNSOption
from dnslib.dns import DNSError

from gameday.localcloud.process.context import CloudContext
from gameday.localcloud.route53.dns_answers import DnsAnswers, Rr, record_ttl, record_values

log = logging.getLogger(__name__)

ECS_OPTION = 8
NEGATIVE_TTL_CAP = 900   # the SOA record's TTL on Route 53


def parse_ecs(data: bytes) -> tuple[str, int] | None:
    """(address, source prefix length) from an EDNS0 client-subnet option (RFC 7871)."""
    if len(data) < 4:
        return None
    family, source, _scope = struct.unpack("!HBB", data[:4])
    raw = data[4:]
    if family == 1:
        return str(ipaddress.IPv4Address(raw.ljust(4, b"\0")[:4])), source
    if family == 2:
        return str(ipaddress.IPv6Address(raw.ljust(16, b"\0")[:16])), source
    return None


def ecs_with_scope(data: bytes) -> bytes:
    """The client's option echoed back with scope = its source prefix (RFC 7871 section 7.2)."""
    return data[:3] + data[2:3] + data[4:]


def _rdata(rr: Rr) -> RD | None:
    value = rr.value
    if rr.rtype == "A":
        return A(value)
    if rr.rtype == "AAAA":
        return AAAA(value)
    if rr.rtype == "CNAME":
        return CNAME(value)
    if rr.rtype == "NS":
        return NS(value)
    if rr.rtype == "TXT":
        return TXT(value.strip('"'))
    if rr.rtype == "MX":
        pref, _, host = value.partition(" ")
        return MX(host, int(pref))
    if rr.rtype == "SOA":
        mname, rname, *times = value.split()
        return SOA(mname, rname, tuple(int(t) for t in times))
    return None


class DnsServer:
    def __init__(self, ctx: CloudContext, answers: DnsAnswers) -> None:
        self._ctx = ctx
        self._answers = answers
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._running = False

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((self._ctx.settings.host, self._ctx.settings.dns_port))   # OSError if the port is taken
        sock.settimeout(0.25)       # how often the loop notices stop()
        self._sock = sock
        self._ctx.dns_address = sock.getsockname()[:2]
        self._running = True
        self._thread = threading.Thread(target=self._serve, name="dns-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None
        while self._running:
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            try:
                reply = self.handle(data, peer[0])
            except Exception:  # one bad packet must not stop the server
                log.exception("dns query failed")
                continue
            if reply is not None:
                try:
                    sock.sendto(reply, peer)
                except OSError:
                    pass

    def handle(self, data: bytes, source_ip: str) -> bytes | None:
        """The wire reply for one query (None: not even a header to answer)."""
        try:
            request = DNSRecord.parse(data)
        except (DNSError, struct.error, ValueError):
            if len(data) < 12:
                return None
            header = bytearray(data[:12])
            header[2] |= 0x80                   # QR
            header[3] = (header[3] & 0xF0) | RCODE.FORMERR
            header[4:12] = b"\0" * 8
            return bytes(header)
        reply = request.reply()
        reply.header.ra = 0
        reply.header.aa = 0
        reply.header.ad = 0          # an authoritative server vouches for nothing DNSSEC
        if not request.questions:
            reply.header.rcode = RCODE.FORMERR
            return reply.pack()
        question = request.questions[0]
        qname = str(question.qname)
        qtype = QTYPE.get(question.qtype, str(question.qtype))
        ecs_raw = None
        has_opt = False
        for rr in request.ar:
            if rr.rtype == QTYPE.OPT:
                has_opt = True
                for opt in rr.rdata or []:
                    if opt.code == ECS_OPTION:
                        ecs_raw = opt.data
        ecs = parse_ecs(ecs_raw) if ecs_raw else None
        region = (self._answers.client_region(ecs[0], ecs[1]) if ecs
                  else self._answers.client_region(source_ip))
        ev = self._answers.evaluate(qname, qtype, region)
        if ev.rcode == "REFUSED":
            reply.header.rcode = RCODE.REFUSED
        else:
            reply.header.aa = 1 if ev.zone is not None or ev.records else 0
            for rr in ev.records:
                rdata = _rdata(rr)
                if rdata is not None:
                    reply.add_answer(RR(rr.name + ".", getattr(QTYPE, rr.rtype), rdata=rdata, ttl=rr.ttl))
            if ev.rcode == "NXDOMAIN":
                reply.header.rcode = RCODE.NXDOMAIN
            if ev.zone is not None and not ev.records:
                self._add_soa(reply, ev.zone)
        if has_opt:
            opts = [EDNSOption(ECS_OPTION, ecs_with_scope(ecs_raw))] if ecs_raw else []
            reply.add_ar(EDNS0(udp_len=4096, opts=opts))
        packed = reply.pack()
        limit = 4096 if has_opt else 512
        if len(packed) > limit:
            reply.rr = []
            reply.header.tc = 1
            packed = reply.pack()
        return packed

    @staticmethod
    def _add_soa(reply: DNSRecord, zone: Any) -> None:
        """Negative answers carry the zone's SOA in the authority section (RFC 2308)."""
        for rs in list(zone.rrsets):
            if str(rs.type).upper() == "SOA":
                for value in record_values(rs):
                    ttl = min(record_ttl(rs), NEGATIVE_TTL_CAP)
                    rdata = _rdata(Rr(zone.name.rstrip("."), "SOA", ttl, value))
                    reply.add_auth(RR(zone.name.rstrip(".") + ".", QTYPE.SOA, rdata=rdata, ttl=ttl))
                return
