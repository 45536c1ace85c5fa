"""An authoritative DNS server on loopback for the hosted zones and ctx.names, over UDP and
TCP on the same port, as Route 53's name servers (dig sends ANY, and every retry of a truncated
answer, over TCP).

Answers come from DnsAnswers (the same evaluation as TestDNSAnswer), so `dig` and
dnspython see the healthy region's address. The client's region for latency records is
taken from the EDNS0 client subnet (the address truncated to its source prefix, echoed back
with its scope; a source prefix of 0 asks not to use it) or the query's source address. TTLs on
the wire are the records' own (60 s), unscaled, as on AWS. UDP answers are truncated (TC) past
512 bytes, or the client's EDNS0 size; TCP answers are not.
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
from tenacity import retry, retry_if_exception, stop_after_attempt

from gameday.localcloud.process.context import CloudContext
from gameday.localcloud.route53.dns_answers import DnsAnswers, Rr, record_ttl, record_values

log = logging.getLogger(__name__)

ECS_OPTION = 8
NEGATIVE_TTL_CAP = 900   # the SOA record's TTL on Route 53
TCP_IDLE_TIMEOUT_S = 10.0   # an idle TCP client is closed after this (RFC 7766 suggests seconds)
MAX_TCP_MESSAGE = 65535
BIND_ATTEMPTS = 20       # with port 0: the UDP port's number may be taken for TCP; try another


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


def _port_taken(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (98, 48)  # EADDRINUSE (Linux, macOS)


class DnsServer:
    def __init__(self, ctx: CloudContext, answers: DnsAnswers) -> None:
        self._ctx = ctx
        self._answers = answers
        self._sock: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._conn_threads: set[threading.Thread] = set()
        self._conns_lock = threading.Lock()
        self._running = False

    def start(self) -> None:
        host, port = self._ctx.settings.host, self._ctx.settings.dns_port
        if port:
            udp, tcp = self._bind(host, port)     # OSError if the port is taken
        else:
            udp, tcp = retry(stop=stop_after_attempt(BIND_ATTEMPTS), retry=retry_if_exception(_port_taken),
                             reraise=True)(self._bind)(host, 0)
        self._sock, self._tcp = udp, tcp
        self._ctx.dns_address = udp.getsockname()[:2]
        self._running = True
        for target, name in ((self._serve, "dns-server"), (self._accept, "dns-server-tcp")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    @staticmethod
    def _bind(host: str, port: int) -> tuple[socket.socket, socket.socket]:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            udp.bind((host, port))
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((host, udp.getsockname()[1]))   # the same port number, as a name server
            tcp.listen(64)
        except BaseException:
            udp.close()
            tcp.close()
            raise
        udp.settimeout(0.25)       # how often the loops notice stop()
        tcp.settimeout(0.25)
        return udp, tcp

    def stop(self) -> None:
        self._running = False
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        with self._conns_lock:
            conns, threads = list(self._conns), list(self._conn_threads)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(timeout=5)
        for sock in (self._sock, self._tcp):
            if sock is not None:
                sock.close()
        self._sock = self._tcp = None

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

    def _accept(self) -> None:
        sock = self._tcp
        assert sock is not None
        while self._running:
            try:
                conn, peer = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            thread = threading.Thread(target=self._serve_tcp, args=(conn, peer[0]), name="dns-tcp-conn", daemon=True)
            with self._conns_lock:
                self._conns.add(conn)
                self._conn_threads.add(thread)
            thread.start()

    def _serve_tcp(self, conn: socket.socket, source_ip: str) -> None:
        """Length-prefixed messages (RFC 1035 4.2.2), several per connection, answered in order."""
        try:
            conn.settimeout(TCP_IDLE_TIMEOUT_S)
            while self._running:
                head = _recv_exactly(conn, 2)
                if head is None:
                    return
                (length,) = struct.unpack("!H", head)
                data = _recv_exactly(conn, length)
                if data is None:
                    return
                try:
                    reply = self.handle(data, source_ip, tcp=True)
                except Exception:
                    log.exception("dns query over tcp failed")
                    return
                if reply is None:
                    return
                conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            return
        finally:
            conn.close()
            with self._conns_lock:
                self._conns.discard(conn)
                self._conn_threads.discard(threading.current_thread())

    def handle(self, data: bytes, source_ip: str, tcp: bool = False) -> bytes | None:
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
        udp_limit = 512
        for rr in request.ar:
            if rr.rtype == QTYPE.OPT:
                has_opt = True
                udp_limit = max(512, min(int(rr.rclass), 4096))   # the client's advertised size
                for opt in rr.rdata or []:
                    if opt.code == ECS_OPTION:
                        ecs_raw = opt.data
        ecs = parse_ecs(ecs_raw) if ecs_raw else None
        region = (self._answers.client_region(ecs[0], ecs[1]) if ecs and ecs[1] > 0
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
        limit = MAX_TCP_MESSAGE if tcp else udp_limit
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


def _recv_exactly(conn: socket.socket, size: int) -> bytes | None:
    """`size` bytes, or None when the client closed (or went idle) first."""
    chunks, got = [], 0
    while got < size:
        chunk = conn.recv(size - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)
