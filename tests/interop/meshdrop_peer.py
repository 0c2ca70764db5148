#!/usr/bin/env python3
"""A minimal meshdrop protocol-version-1 peer (dialler role only), written from
docs/PROTOCOL.md alone, using only the Python standard library plus the
`openssl` command-line tool to make a self-signed certificate.

It dials a meshdrop peer, runs the HELLO exchange, keeps the connection alive
with PING/PONG for --hold-ms, then closes it with CLOSE closed_by_user.
Every step is reported as one JSON object per line on stdout.

Usage:
  python3 meshdrop_peer.py --host 127.0.0.1 --port N --listen-port P
                           [--hold-ms MS] [--version V] [...]
  python3 meshdrop_peer.py --self-test     # codec + fingerprint checks against the doc's examples

Misbehaviour flags (to check how meshdrop refuses, per PROTOCOL.md):
  --lie-about-id        HELLO carries an id that is not our certificate's fingerprint
  --ping-before-hello   send a PING instead of HELLO as the first frame
  --raw-first HEX       send these raw bytes instead of HELLO as the first thing after TLS
  --hello-extra JSON    merge this JSON object into our HELLO payload (override fields)
  --append-after-hello HEX  raw bytes sent in the same write as our HELLO
  --no-client-cert      present no certificate in TLS
  --alpn NAME           offer this ALPN protocol instead of meshdrop/1 ('' = offer none)
  --tls12               restrict ourselves to TLS 1.2
  --no-pong             do not answer PINGs (with --ping-interval-ms 0: stay silent)
  --end-mode MODE       close (CLOSE + close_notify, default) | drop (no CLOSE) | partial (end inside a frame)
  --close-code CODE     the code of our final CLOSE (default closed_by_user)
  --identity-dir DIR    keep/reuse the certificate in DIR (two runs = same id)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

# ---------------------------------------------------------------------------
# Constants from PROTOCOL.md

ALPN = "meshdrop/1"
PROTOCOL_VERSION = 1
AGENT = "meshdrop-py-interop/0.1"

HELLO, PING, PONG, CLOSE = 0x01, 0x02, 0x03, 0x04
FRAME_NAMES = {HELLO: "HELLO", PING: "PING", PONG: "PONG", CLOSE: "CLOSE"}
HEADER_SIZE = 5
ABSOLUTE_CAP = 16 * 1024 * 1024  # 16 MiB, any frame, any version
CAPS = {HELLO: 32768, PING: 8, PONG: 8, CLOSE: 4096}

MAX_SAFE_INTEGER = 2**53 - 1
ID_RE = re.compile(r"[0-9a-f]{64}")
CODE_RE = re.compile(r"[a-z0-9_]{1,64}")
CLOSE_MESSAGE_KEEP = 512
FINAL_CODES = {"peer_removed", "closed_by_user", "self_connection"}
CLOSE_GRACE_S = 1.0

MESSAGES = {
    "closed_by_user": "the connection was closed by the user",
    "bad_payload": "a payload did not decode",
    "frame_too_large": "a frame header announced a length above its cap",
    "unknown_frame": "a frame type not defined on this connection",
    "unexpected_message": "a valid message in the wrong state",
    "unsupported_version": "no protocol version in common",
    "identity_mismatch": "the HELLO id is not the certificate fingerprint",
    "self_connection": "the remote has our own id",
    "handshake_timeout": "no valid HELLO in time",
    "heartbeat_timeout": "nothing received for longer than the heartbeat timeout",
    "wrong_application": "ALPN meshdrop/1 was not negotiated",
}


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


class ProtocolError(Exception):
    """A failure that closes the connection with the given close code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


# ---------------------------------------------------------------------------
# Framing


def encode_frame(ftype: int, payload: bytes) -> bytes:
    cap = CAPS.get(ftype)
    if cap is None:
        raise ValueError(f"frame type {ftype:#04x} is not defined in version 1")
    if len(payload) > cap or len(payload) > ABSOLUTE_CAP:
        raise ValueError(f"{FRAME_NAMES[ftype]} payload of {len(payload)} bytes exceeds cap {cap}")
    return struct.pack(">IB", len(payload), ftype) + payload


class Decoder:
    """Incremental frame decoder. Checks type, then length against the caps, as
    soon as the 5 header bytes are buffered, before waiting for any payload."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.dead = False

    def feed(self, data: bytes) -> None:
        if not self.dead:
            self.buf += data

    def next_frame(self) -> tuple[int, bytes] | None:
        """Returns the next whole frame, None if more bytes are needed, or raises
        ProtocolError (after which the decoder is dead)."""
        if self.dead or len(self.buf) < HEADER_SIZE:
            return None
        length, ftype = struct.unpack_from(">IB", self.buf, 0)
        if ftype not in CAPS:
            self.dead = True
            raise ProtocolError("unknown_frame", f"frame type {ftype:#04x}")
        if length > CAPS[ftype] or length > ABSOLUTE_CAP:
            self.dead = True
            raise ProtocolError("frame_too_large", f"{FRAME_NAMES[ftype]} announces {length} bytes, cap {CAPS[ftype]}")
        if len(self.buf) < HEADER_SIZE + length:
            return None
        payload = bytes(self.buf[HEADER_SIZE:HEADER_SIZE + length])
        del self.buf[:HEADER_SIZE + length]
        return ftype, payload

    @property
    def inside_frame(self) -> bool:
        return len(self.buf) > 0


# ---------------------------------------------------------------------------
# Messages


def utf16_len(s: str) -> int:
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def decode_json_object(payload: bytes) -> dict:
    try:
        text = payload.decode("utf-8", "strict")
    except UnicodeDecodeError as e:
        raise ProtocolError("bad_payload", f"invalid UTF-8: {e}") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError as e:
        raise ProtocolError("bad_payload", f"not JSON: {e}") from None
    if not isinstance(value, dict):
        raise ProtocolError("bad_payload", "JSON payload is not an object")
    return value


def as_integer(value, field: str) -> int:
    if isinstance(value, bool):
        raise ProtocolError("bad_payload", f"{field} is a boolean, not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ProtocolError("bad_payload", f"{field} is not an integer: {value!r}")


def decode_hello(payload: bytes) -> dict:
    obj = decode_json_object(payload)
    if "version" not in obj:
        raise ProtocolError("bad_payload", "HELLO without version")
    version = as_integer(obj["version"], "version")
    if not 1 <= version <= MAX_SAFE_INTEGER:
        raise ProtocolError("bad_payload", f"version out of range: {version}")
    rid = obj.get("id")
    if not isinstance(rid, str) or not ID_RE.fullmatch(rid):
        raise ProtocolError("bad_payload", f"bad id: {rid!r}")
    if "port" not in obj:
        raise ProtocolError("bad_payload", "HELLO without port")
    port = as_integer(obj["port"], "port")
    if not 1 <= port <= 65535:
        raise ProtocolError("bad_payload", f"port out of range: {port}")
    agent = obj.get("agent")
    if agent is None:
        agent = ""
    if not isinstance(agent, str) or utf16_len(agent) > 128:
        raise ProtocolError("bad_payload", "bad agent")
    features = obj.get("features")
    if features is None:
        features = []
    if not isinstance(features, list) or len(features) > 32:
        raise ProtocolError("bad_payload", "bad features")
    for f in features:
        if not isinstance(f, str) or not 1 <= utf16_len(f) <= 64:
            raise ProtocolError("bad_payload", f"bad feature: {f!r}")
    return {"version": version, "id": rid, "port": port, "agent": agent, "features": features}


def truncate_utf16(s: str, units: int) -> str:
    raw = s.encode("utf-16-le", "surrogatepass")
    if len(raw) <= units * 2:
        return s
    return raw[: units * 2].decode("utf-16-le", "surrogatepass")


def decode_close(payload: bytes) -> dict:
    obj = decode_json_object(payload)
    code = obj.get("code")
    if not isinstance(code, str) or not CODE_RE.fullmatch(code):
        raise ProtocolError("bad_payload", f"bad CLOSE code: {code!r}")
    message = obj.get("message")
    if message is None:
        message = ""
    if not isinstance(message, str):
        raise ProtocolError("bad_payload", "CLOSE message is not a string")
    return {"code": code, "message": truncate_utf16(message, CLOSE_MESSAGE_KEEP)}


def decode_nonce(payload: bytes) -> int:
    if len(payload) != 8:
        raise ProtocolError("bad_payload", f"nonce of {len(payload)} bytes (must be 8)")
    return struct.unpack(">Q", payload)[0]


def close_payload(code: str, message: str) -> bytes:
    message = truncate_utf16(message, CLOSE_MESSAGE_KEEP)
    return json.dumps({"code": code, "message": message}, separators=(",", ":")).encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------------------
# Identity


def fingerprint_der(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def make_identity(directory: str, listen_port: int) -> tuple[str, str, str]:
    """Creates an ECDSA P-256 self-signed certificate with the openssl CLI.
    Returns (cert path, key path, id)."""
    cert = os.path.join(directory, "peer.crt")
    key = os.path.join(directory, "peer.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", cert, "-subj", f"/CN=peer {listen_port}/O=meshdrop", "-days", "7300"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    with open(cert, "r", encoding="ascii") as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return cert, key, fingerprint_der(der)


def load_or_make_identity(directory: str, listen_port: int) -> tuple[str, str, str]:
    cert = os.path.join(directory, "peer.crt")
    key = os.path.join(directory, "peer.key")
    if os.path.exists(cert) and os.path.exists(key):
        with open(cert, "r", encoding="ascii") as f:
            return cert, key, fingerprint_der(ssl.PEM_cert_to_DER_cert(f.read()))
    os.makedirs(directory, exist_ok=True)
    return make_identity(directory, listen_port)


# ---------------------------------------------------------------------------
# The connection


class Connection:
    def __init__(self, args: argparse.Namespace, cert: str | None, key: str | None, own_id: str) -> None:
        self.args = args
        self.cert = cert
        self.key = key
        self.own_id = own_id
        self.sock: ssl.SSLSocket | None = None
        self.decoder = Decoder()
        self.state = "handshaking"
        self.remote_fingerprint: str | None = None
        self.remote: dict | None = None
        self.last_received = time.monotonic()
        self.outstanding_nonce: int | None = None
        self.outstanding_sent_at = 0.0
        self.opened_at = 0.0

    # -- transport ---------------------------------------------------------

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if self.args.tls12:
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        else:
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            ctx.maximum_version = ssl.TLSVersion.TLSv1_3
        if self.cert and self.key:
            ctx.load_cert_chain(self.cert, self.key)
        if self.args.alpn:
            ctx.set_alpn_protocols([self.args.alpn])
        return ctx

    def send_frame(self, ftype: int, payload: bytes) -> None:
        self.send_raw(encode_frame(ftype, payload))

    def send_raw(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.settimeout(5.0)
        self.sock.sendall(data)

    def recv_some(self, timeout: float) -> bytes | None:
        """Returns received bytes, b'' on EOF, None on timeout."""
        assert self.sock is not None
        self.sock.settimeout(max(timeout, 0.001))
        try:
            return self.sock.recv(65536)
        except (TimeoutError, socket.timeout, ssl.SSLWantReadError):
            return None

    # -- closing -----------------------------------------------------------

    def close_deliberately(self, code: str, message: str | None = None) -> None:
        """CLOSE frame, then close_notify + FIN, then drop after the grace period."""
        message = MESSAGES.get(code, code) if message is None else message
        try:
            self.send_frame(CLOSE, close_payload(code, message))
            emit("close_sent", code=code, message=message)
        except OSError as e:
            emit("close_not_sent", code=code, error=str(e))
        self.state = "closed"
        self._end_stream()

    def _end_stream(self) -> None:
        assert self.sock is not None
        deadline = time.monotonic() + CLOSE_GRACE_S
        sock = self.sock
        how = "close_notify"
        try:
            sock.settimeout(CLOSE_GRACE_S)
            raw = sock.unwrap()  # sends close_notify; may also wait for the remote's
            raw.shutdown(socket.SHUT_WR)
            while time.monotonic() < deadline:  # read and ignore until EOF or grace over
                raw.settimeout(max(deadline - time.monotonic(), 0.001))
                if not raw.recv(65536):
                    break
            raw.close()
        except (OSError, ValueError) as e:
            # The remote destroys its socket on CLOSE without replying, so an EOF or
            # reset while waiting for its close_notify is normal (PROTOCOL.md, Closing).
            how = f"close_notify_incomplete: {type(e).__name__}"
            try:
                sock.close()
            except OSError:
                pass
        emit("stream_ended", how=how)

    def drop(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass

    # -- main ---------------------------------------------------------------

    def run(self) -> str:
        """Returns the reason the connection ended."""
        args = self.args
        started = time.monotonic()
        handshake_deadline = started + args.handshake_timeout_ms / 1000
        try:
            raw = socket.create_connection((args.host, args.port), timeout=args.handshake_timeout_ms / 1000)
        except OSError as e:
            emit("connect_error", error=str(e))
            return "connect_error"
        emit("tcp_connected")
        try:
            raw.settimeout(max(handshake_deadline - time.monotonic(), 0.001))
            # No SNI: we dial an IP address (SNI is ignored anyway).
            self.sock = self.context().wrap_socket(raw, server_hostname=None)
        except (ssl.SSLError, OSError) as e:
            emit("tls_error", error=str(e))
            raw.close()
            return "tls_error"

        der = self.sock.getpeercert(binary_form=True)
        self.remote_fingerprint = fingerprint_der(der) if der else None
        emit("tls", version=self.sock.version(), alpn=self.sock.selected_alpn_protocol(),
             cipher=self.sock.cipher()[0] if self.sock.cipher() else None,
             remote_fingerprint=self.remote_fingerprint)

        if args.alpn == ALPN and self.sock.selected_alpn_protocol() != ALPN:
            # We offered meshdrop/1 and the acceptor selected no ALPN: refuse before any HELLO.
            self.close_deliberately("wrong_application")
            return "wrong_application"

        # We are the dialler: we speak first.
        if args.raw_first is not None:
            self.send_raw(bytes.fromhex(args.raw_first))
            emit("raw_sent", hex=args.raw_first)
        elif args.ping_before_hello:
            self.send_frame(PING, struct.pack(">Q", 1))
            emit("ping_sent", nonce=1, before_hello=True)
        else:
            hello = {
                "version": args.version,
                "id": self.hello_id(),
                "port": args.listen_port,
                "agent": AGENT,
                "features": [],
            }
            if args.hello_extra:
                hello.update(json.loads(args.hello_extra))
            payload = json.dumps(hello, separators=(",", ":")).encode("utf-8")
            extra = bytes.fromhex(args.append_after_hello) if args.append_after_hello else b""
            # One write: HELLO and any appended bytes travel in the same TLS record.
            self.send_raw(encode_frame(HELLO, payload) + extra)
            emit("hello_sent", hello=hello, appended=extra.hex() or None)

        hold_end: float | None = None
        next_ping = 0.0
        interval = args.ping_interval_ms / 1000
        while True:
            now = time.monotonic()
            # ---- timers
            if self.state == "handshaking" and now >= handshake_deadline:
                self.close_deliberately("handshake_timeout")
                return "handshake_timeout"
            if self.state == "open":
                if hold_end is not None and now >= hold_end:
                    emit("hold_over", held_ms=round((now - self.opened_at) * 1000))
                    return self.end_hold()
                if interval > 0 and now >= next_ping:
                    if now - self.last_received > args.heartbeat_timeout_ms / 1000:
                        self.close_deliberately("heartbeat_timeout")
                        return "heartbeat_timeout"
                    self.send_ping()
                    next_ping = now + interval
            # ---- wait for bytes until the next timer
            wake = [handshake_deadline] if self.state == "handshaking" else [hold_end or now + 1]
            if self.state == "open" and interval > 0:
                wake.append(next_ping)
            try:
                data = self.recv_some(min(wake) - time.monotonic())
            except (ssl.SSLError, OSError) as e:
                emit("transport_error", error=str(e))
                self.drop()
                return "connection_lost"
            if data is None:
                continue
            if data == b"":
                if self.decoder.inside_frame:
                    emit("protocol_error", code="bad_payload", detail="stream ended inside a frame", local=True)
                    self.drop()
                    return "bad_payload"
                emit("eof")
                self.drop()
                return "connection_lost"
            self.last_received = time.monotonic()
            self.decoder.feed(data)
            # ---- handle every whole frame, in order
            try:
                while True:
                    frame = self.decoder.next_frame()
                    if frame is None:
                        break
                    result = self.handle(*frame)
                    if result is not None:
                        return result
                    if self.state == "open" and hold_end is None:
                        self.opened_at = time.monotonic()
                        hold_end = self.opened_at + args.hold_ms / 1000
                        next_ping = 0.0  # first PING as soon as the connection opens (next loop turn)
            except ProtocolError as e:
                emit("protocol_error", code=e.code, detail=e.detail)
                self.close_deliberately(e.code)
                return e.code

    def end_hold(self) -> str:
        mode = self.args.end_mode
        if mode == "close":
            self.close_deliberately(self.args.close_code)
            return self.args.close_code
        assert self.sock is not None
        if mode == "partial":
            # Half a frame header, then end the stream: meshdrop records bad_payload locally.
            self.send_raw(b"\x00\x00\x00")
            emit("raw_sent", hex="000000")
            self._end_stream()
            return "ended_inside_frame"
        # mode == "drop": no CLOSE, no close_notify; just close the TCP socket.
        self.drop()
        emit("dropped")
        return "dropped"

    def hello_id(self) -> str:
        if self.args.lie_about_id:
            return hashlib.sha256(b"not my certificate " + self.own_id.encode()).hexdigest()
        return self.own_id

    def send_ping(self) -> None:
        nonce = time.monotonic_ns() & 0xFFFFFFFFFFFFFFFF
        self.outstanding_nonce = nonce
        self.outstanding_sent_at = time.monotonic()
        self.send_frame(PING, struct.pack(">Q", nonce))
        emit("ping_sent", nonce=nonce)

    def handle(self, ftype: int, payload: bytes) -> str | None:
        """Handles one frame; returns a final reason when the connection ended."""
        if ftype == CLOSE:
            msg = decode_close(payload)  # a bad CLOSE raises bad_payload
            emit("close_received", code=msg["code"], message=msg["message"], state=self.state,
                 final=msg["code"] in FINAL_CODES)
            self.state = "closed"
            self.drop()  # close without replying
            return "remote_close"
        if self.state == "handshaking":
            if ftype != HELLO:
                raise ProtocolError("unexpected_message", f"{FRAME_NAMES[ftype]} before the handshake")
            hello = decode_hello(payload)
            emit("hello_received", hello=hello)
            # Version negotiation, dialler side: we speak 1 only (we merely announce args.version).
            own_highest = max(self.args.version, PROTOCOL_VERSION)
            if hello["version"] > own_highest or min(own_highest, hello["version"]) != PROTOCOL_VERSION:
                raise ProtocolError("unsupported_version", f"acceptor answered version {hello['version']}")
            if self.remote_fingerprint is None or hello["id"] != self.remote_fingerprint:
                raise ProtocolError("identity_mismatch",
                                    f"HELLO id {hello['id']} != certificate fingerprint {self.remote_fingerprint}")
            if hello["id"] == self.own_id:
                raise ProtocolError("self_connection", "the acceptor has our id")
            if self.args.expect_id and hello["id"] != self.args.expect_id:
                raise ProtocolError("identity_changed", f"expected {self.args.expect_id}")
            self.remote = hello
            self.state = "open"
            emit("open", remote_id=hello["id"], version=hello["version"], remote_port=hello["port"],
                 agent=hello["agent"], features=hello["features"], fingerprint_verified=True)
            return None
        # open
        if ftype == HELLO:
            raise ProtocolError("unexpected_message", "second HELLO")
        if ftype == PING:
            nonce = decode_nonce(payload)
            if not self.args.no_pong:
                self.send_frame(PONG, payload)
            emit("ping", nonce=nonce, answered=not self.args.no_pong)
            return None
        if ftype == PONG:
            nonce = decode_nonce(payload)
            matched = nonce == self.outstanding_nonce
            rtt = round((time.monotonic() - self.outstanding_sent_at) * 1000, 3) if matched else None
            if matched:
                self.outstanding_nonce = None
            emit("pong", nonce=nonce, matched=matched, rtt_ms=rtt)
            return None
        raise ProtocolError("unknown_frame", f"type {ftype:#04x}")  # unreachable: decoder checks


# ---------------------------------------------------------------------------
# Self-test against the examples in PROTOCOL.md

TEST_VECTOR_PEM = """-----BEGIN CERTIFICATE-----
MIIBVTCB/KADAgECAhBZfHgcmZMeEsF0F0U/VnMYMAoGCCqGSM49BAMCMCQxDzAN
BgNVBAMTBnBlZXIgYTERMA8GA1UEChMIbWVzaGRyb3AwHhcNMjYxMTI0MjI0NzM2
WhcNNDYxMTE5MjI0NzM2WjAkMQ8wDQYDVQQDEwZwZWVyIGExETAPBgNVBAoTCG1l
c2hkcm9wMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEPherdteT8V9ZrACTB8fK
YMeTKt1a0YtFoJkFr//0FAoo/BAXOATHZKOB14ubSr7o1eEi6EbPL3u0NeNwvwZu
KKMQMA4wDAYDVR0TAQH/BAIwADAKBggqhkjOPQQDAgNIADBFAiEAieJCS7UXAhUd
o2H4SGV+fbqVN97Qrf7l9hrHwSoPmroCIA9vTcjcArIEFcx6YX9pAbmZuUNgCK2O
ihr3lwgD1yXD
-----END CERTIFICATE-----
"""
TEST_VECTOR_ID = "8c062bcd84dfba9b576f961d1a6ca2b96c4ee986dae143953a02d3832e7054b9"


def self_test() -> int:
    failures: list[str] = []

    def check(name: str, cond: bool) -> None:
        emit("check", name=name, ok=bool(cond))
        if not cond:
            failures.append(name)

    der = ssl.PEM_cert_to_DER_cert(TEST_VECTOR_PEM)
    check("test vector is 345 DER bytes", len(der) == 345)
    check("test vector fingerprint", fingerprint_der(der) == TEST_VECTOR_ID)

    check("PING nonce 1 is 00 00 00 08 02 00..01",
          encode_frame(PING, struct.pack(">Q", 1)) == bytes.fromhex("0000000802" "0000000000000001"))
    shutdown = close_payload("shutdown", "the daemon is shutting down")
    check("CLOSE shutdown is 59-byte payload", len(shutdown) == 59)
    check("CLOSE shutdown frame is 64 bytes", len(encode_frame(CLOSE, shutdown)) == 64)
    cbu = close_payload("closed_by_user", MESSAGES["closed_by_user"])
    check("CLOSE closed_by_user is 75-byte payload", len(cbu) == 75)
    hello = json.dumps({"version": 1, "id": TEST_VECTOR_ID, "port": 7000, "agent": "meshdrop/0.1.0", "features": []},
                       separators=(",", ":")).encode()
    check("worked-example HELLO is 136-byte payload", len(hello) == 136)
    check("worked-example HELLO frame is 141 bytes", len(encode_frame(HELLO, hello)) == 141)
    dup = close_payload("duplicate_connection", "a connection between these peers already exists")
    check("duplicate_connection CLOSE frame is 96 bytes", len(encode_frame(CLOSE, dup)) == 96)
    check("duplicate_connection payload length 0x5b", len(dup) == 0x5B)
    check("worked-example nonce", struct.unpack(">Q", bytes.fromhex("00000b8f3c2a91d4"))[0] == 12709817651668)

    def decode_error(hexbytes: str) -> str | None:
        d = Decoder()
        d.feed(bytes.fromhex(hexbytes))
        try:
            frame = d.next_frame()
            if frame is None:
                return "incomplete"
            ftype, payload = frame
            if ftype in (PING, PONG):
                decode_nonce(payload)
            elif ftype == HELLO:
                decode_hello(payload)
            else:
                decode_close(payload)
            return None
        except ProtocolError as e:
            return e.code

    check("00000009 02 -> frame_too_large", decode_error("0000000902") == "frame_too_large")
    check("ffffffff 01 -> frame_too_large", decode_error("ffffffff01") == "frame_too_large")
    check("00000000 10 -> unknown_frame", decode_error("0000000010") == "unknown_frame")
    check("ffffffff 10 -> unknown_frame (type first)", decode_error("ffffffff10") == "unknown_frame")
    check("00000000 01 -> bad_payload", decode_error("0000000001") == "bad_payload")
    check("00000007 02 ... -> bad_payload", decode_error("0000000702" + "00" * 7) == "bad_payload")
    check("version true -> bad_payload",
          decode_error(encode_frame(HELLO, json.dumps({"version": True, "id": TEST_VECTOR_ID, "port": 1}).encode()).hex())
          == "bad_payload")
    check("version 1.0 accepted",
          decode_error(encode_frame(HELLO, b'{"version":1.0,"id":"' + TEST_VECTOR_ID.encode() + b'","port":1e0}').hex())
          is None)
    # frames before a bad header are delivered first
    d = Decoder()
    d.feed(encode_frame(PING, struct.pack(">Q", 7)) + bytes.fromhex("0000000010"))
    first = d.next_frame()
    try:
        d.next_frame()
        second = None
    except ProtocolError as e:
        second = e.code
    check("whole frame before a bad header comes first", first == (PING, struct.pack(">Q", 7)) and second == "unknown_frame")
    emit("self_test", ok=not failures, failures=failures)
    return 0 if not failures else 1


# ---------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, help="the meshdrop peer's TLS port to dial")
    p.add_argument("--listen-port", type=int, default=0, help="the port we announce in HELLO; 0 (the default) says we accept no connections")
    p.add_argument("--hold-ms", type=int, default=1500)
    p.add_argument("--version", type=int, default=PROTOCOL_VERSION, help="HELLO version to announce")
    p.add_argument("--ping-interval-ms", type=int, default=10_000, help="0: never send PINGs")
    p.add_argument("--heartbeat-timeout-ms", type=int, default=30_000)
    p.add_argument("--handshake-timeout-ms", type=int, default=10_000)
    p.add_argument("--expect-id", default=None, help="refuse with identity_changed unless the acceptor has this id")
    p.add_argument("--identity-dir", default=None, help="keep the certificate here (reused if present)")
    p.add_argument("--end-mode", choices=["close", "drop", "partial"], default="close",
                   help="how to end after --hold-ms: CLOSE (default), drop the socket, or end inside a frame")
    p.add_argument("--close-code", default="closed_by_user", help="code of our CLOSE at the end of the hold")
    p.add_argument("--no-pong", action="store_true", help="do not answer PINGs")
    p.add_argument("--lie-about-id", action="store_true")
    p.add_argument("--ping-before-hello", action="store_true")
    p.add_argument("--raw-first", default=None, metavar="HEX")
    p.add_argument("--hello-extra", default=None, metavar="JSON")
    p.add_argument("--append-after-hello", default=None, metavar="HEX",
                   help="raw bytes sent in the same write as our HELLO")
    p.add_argument("--no-client-cert", action="store_true")
    p.add_argument("--alpn", default=ALPN)
    p.add_argument("--tls12", action="store_true")
    p.add_argument("--self-test", action="store_true")
    args = p.parse_args(argv)

    if args.self_test:
        return self_test()
    if args.port is None:
        p.error("--port is required")
    if shutil.which("openssl") is None:
        emit("error", error="openssl not found")
        return 2

    with tempfile.TemporaryDirectory(prefix="meshdrop-py-") as tmp:
        try:
            cert, key, own_id = load_or_make_identity(args.identity_dir or tmp, args.listen_port)
        except subprocess.CalledProcessError as e:
            emit("error", error=f"openssl failed: {e.stderr.decode(errors='replace')}")
            return 2
        emit("identity", id=own_id)
        conn = Connection(args, None if args.no_client_cert else cert, None if args.no_client_cert else key, own_id)
        try:
            reason = conn.run()
        except Exception as e:  # report, do not hide
            emit("error", error=f"{type(e).__name__}: {e}")
            conn.drop()
            return 1
        emit("closed", reason=reason)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
