#!/usr/bin/env python3
"""Minimal DNS client (standard library only) for the `coredns` test service.

    dnsquery.py [--tcp] [--timeout S] HOST:PORT NAME [TYPE]

Prints `rcode=<RCODE> answers=<N>` and then one line per answer record
(`name ttl TYPE data`). Exit status 0 when the server answered (whatever the rcode),
2 when it did not answer in time, 1 on usage errors. TYPE: A, AAAA, CNAME, NS, SOA, TXT, MX
or a number (default A). scripts/services uses it as the readiness probe, so `dig` is not needed.
"""
import argparse
import ipaddress
import os
import socket
import struct
import sys

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28, "ANY": 255}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def read_name(msg, off):
    """Returns (name, offset after the name in the original position)."""
    labels, end, jumps = [], None, 0
    while True:
        n = msg[off]
        if n & 0xC0 == 0xC0:  # compression pointer
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            jumps += 1
            if jumps > 64:
                raise ValueError("compression loop")
            continue
        off += 1
        if n == 0:
            break
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n
    return ".".join(labels) + ".", (end if end is not None else off)


def rdata_text(msg, rtype, off, rdlen):
    data = msg[off:off + rdlen]
    if rtype == 1 and rdlen == 4:
        return str(ipaddress.IPv4Address(data))
    if rtype == 28 and rdlen == 16:
        return str(ipaddress.IPv6Address(data))
    if rtype in (2, 5):
        return read_name(msg, off)[0]
    if rtype == 6:
        mname, o = read_name(msg, off)
        rname, o = read_name(msg, o)
        return " ".join([mname, rname] + [str(x) for x in struct.unpack("!5I", msg[o:o + 20])])
    if rtype == 15:
        return "%d %s" % (struct.unpack("!H", data[:2])[0], read_name(msg, off + 2)[0])
    if rtype == 16:
        parts, i = [], 0
        while i < len(data):
            parts.append('"%s"' % data[i + 1:i + 1 + data[i]].decode("utf-8", "replace"))
            i += 1 + data[i]
        return " ".join(parts)
    return data.hex()


def query(host, port, name, qtype, use_tcp, timeout):
    qid = int.from_bytes(os.urandom(2), "big")
    # RD set, one question, plus an EDNS0 OPT record (4096-byte UDP payload).
    msg = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1) + encode_name(name)
    msg += struct.pack("!HH", qtype, 1) + b"\0" + struct.pack("!HHIH", 41, 4096, 0, 0)
    if use_tcp:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack("!H", len(msg)) + msg)
            buf = b""
            while len(buf) < 2 or len(buf) < 2 + struct.unpack("!H", buf[:2])[0]:
                chunk = s.recv(65535)
                if not chunk:
                    raise OSError("connection closed")
                buf += chunk
            resp = buf[2:2 + struct.unpack("!H", buf[:2])[0]]
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(msg, (host, port))
            while True:
                resp, _ = s.recvfrom(65535)
                if len(resp) >= 12 and struct.unpack("!H", resp[:2])[0] == qid:
                    break
    return resp


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tcp", action="store_true")
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("server", help="HOST:PORT")
    ap.add_argument("name")
    ap.add_argument("type", nargs="?", default="A")
    a = ap.parse_args()
    host, _, port = a.server.rpartition(":")
    try:
        qtype = int(a.type) if a.type.isdigit() else TYPES[a.type.upper()]
    except KeyError:
        ap.error("unknown type %s" % a.type)
    try:
        resp = query(host or "127.0.0.1", int(port), a.name, qtype, a.tcp, a.timeout)
    except (OSError, socket.timeout) as e:
        print("no answer from %s: %s" % (a.server, e), file=sys.stderr)
        return 2
    _, flags, qd, an, _, _ = struct.unpack("!HHHHHH", resp[:12])
    off = 12
    for _ in range(qd):
        off = read_name(resp, off)[1] + 4
    print("rcode=%s answers=%d" % (RCODES.get(flags & 0xF, str(flags & 0xF)), an))
    for _ in range(an):
        rname, off = read_name(resp, off)
        rtype, _, ttl, rdlen = struct.unpack("!HHIH", resp[off:off + 10])
        off += 10
        print("%s %d %s %s" % (rname, ttl, TYPE_NAMES.get(rtype, str(rtype)),
                               rdata_text(resp, rtype, off, rdlen)))
        off += rdlen
    return 0


if __name__ == "__main__":
    sys.exit(main())
