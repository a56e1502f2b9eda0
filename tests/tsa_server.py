"""A minimal RFC 3161 Time-Stamping Authority for the tests (127.0.0.1 only).

``LocalTSA()`` makes a throw-away CA and a TSA certificate (EC P-256, critical
``id-kp-timeStamping`` EKU), then serves ``POST /`` on an ephemeral loopback port:
it parses the DER ``TimeStampReq`` and answers a ``TimeStampResp`` whose token is a
CMS SignedData over a TSTInfo. Neither ``cryptography`` (its PKCS#7 builder signs
only id-data) nor ``rfc3161-client`` (client side only) builds that, so the DER is
assembled here with a small encoder.

``tsa.mode`` picks a misbehaviour for the next requests: ``"ok"`` (default),
``"http500"``, ``"garbage"``, ``"reject"``, ``"mods"`` (grantedWithMods),
``"wrong_nonce"``, ``"wrong_imprint"``, ``"no_nonce"``, ``"no_certs"``, ``"hang"``
(waits up to ``HANG_S`` seconds, or until ``stop()``). Requests are bounded: a body
over ``MAX_REQUEST`` bytes gets HTTP 413 and is not read. ``LocalTSA(intermediate=True)``
signs under root → intermediate CA → TSA and embeds the intermediate in its tokens.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import http.server
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MAX_REQUEST = 16 * 1024
HANG_S = 5.0

# --- DER encoding ------------------------------------------------------------


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def set_of(*items: bytes) -> bytes:
    return tlv(0x31, b"".join(sorted(items)))   # DER: SET OF sorted by encoding


def integer(v: int) -> bytes:
    return tlv(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big", signed=True))


def oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        out += bytes(reversed(chunk))
    return tlv(0x06, bytes(out))


def octets(b: bytes) -> bytes:
    return tlv(0x04, b)


def explicit(n: int, content: bytes) -> bytes:
    return tlv(0xA0 | n, content)


def gentime(t: dt.datetime) -> bytes:
    return tlv(0x18, t.strftime("%Y%m%d%H%M%SZ").encode())


# --- DER decoding (just enough for TimeStampReq) ------------------------------


def read_tlv(buf: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    """(tag, content, next position); raises ValueError on truncation."""
    tag, first = buf[pos], buf[pos + 1]
    pos += 2
    if first & 0x80:
        k = first & 0x7F
        length = int.from_bytes(buf[pos:pos + k], "big")
        pos += k
    else:
        length = first
    if pos + length > len(buf):
        raise ValueError("truncated DER")
    return tag, buf[pos:pos + length], pos + length


def children(content: bytes) -> list[tuple[int, bytes, bytes]]:
    """(tag, content, whole TLV) for each element of a constructed value."""
    out, pos = [], 0
    while pos < len(content):
        tag, value, nxt = read_tlv(content, pos)
        out.append((tag, value, content[pos:nxt]))
        pos = nxt
    return out


def parse_request(der: bytes) -> tuple[bytes, int | None, bool]:
    """TimeStampReq → (messageImprint TLV, nonce or None, certReq)."""
    tag, body, end = read_tlv(der)
    if tag != 0x30 or end != len(der):
        raise ValueError("not a TimeStampReq")
    items = children(body)
    imprint, nonce, cert_req = items[1][2], None, False
    for t, value, _ in items[2:]:
        if t == 0x02:
            nonce = int.from_bytes(value, "big", signed=True)
        elif t == 0x01:
            cert_req = value != b"\x00"
    return imprint, nonce, cert_req


# --- the authority -------------------------------------------------------------

SHA256 = "2.16.840.1.101.3.4.2.1"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
ID_SIGNED_DATA = "1.2.840.113549.1.7.2"
ID_CT_TSTINFO = "1.2.840.113549.1.9.16.1.4"
ATTR_CONTENT_TYPE = "1.2.840.113549.1.9.3"
ATTR_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
ATTR_SIGNING_CERT_V2 = "1.2.840.113549.1.9.16.2.47"
POLICY = "1.3.6.1.4.1.55555.1.1"   # a made-up policy OID for the test TSA


def make_ca(name: str, issuer=None) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed root, or an intermediate CA when ``issuer=(key, cert)`` is given."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_key, issuer_name = (issuer[0], issuer[1].subject) if issuer else (key, subject)
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0),
                           critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                           critical=True)
            .sign(issuer_key, hashes.SHA256()))
    return key, cert


def make_tsa_cert(ca_key, ca_cert) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "copyscope test TSA")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        import sys
        if not isinstance(sys.exc_info()[1], ConnectionError):   # a client that hung up is fine
            super().handle_error(request, client_address)


class LocalTSA:
    """``intermediate=True``: root → intermediate CA → TSA, the token embeds both."""

    def __init__(self, intermediate: bool = False) -> None:
        self.ca_key, self.ca_cert = make_ca("copyscope test root")
        signer, self.chain = (self.ca_key, self.ca_cert), []
        if intermediate:
            signer = make_ca("copyscope test intermediate", issuer=signer)
            self.chain = [signer[1].public_bytes(serialization.Encoding.DER)]
        self.key, self.cert = make_tsa_cert(*signer)
        self.mode = "ok"
        self.serial = 0
        self.requests = 0
        self._release = threading.Event()
        self._httpd: _QuietServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def root_pem(self) -> bytes:
        return self.ca_cert.public_bytes(serialization.Encoding.PEM)

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/"

    def start(self) -> "LocalTSA":
        tsa = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:   # keep pytest output clean
                pass

            def do_POST(self) -> None:
                tsa.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                if not 0 < length <= MAX_REQUEST:
                    return self._send(413, b"", "text/plain")
                body = self.rfile.read(length)
                if tsa.mode == "hang":
                    tsa._release.wait(HANG_S)
                    return None                          # the client gave up long ago: no reply
                if tsa.mode == "http500":
                    return self._send(500, b"internal error", "text/plain")
                if tsa.mode == "garbage":
                    return self._send(200, b"\x13\x37 this is not DER", "application/timestamp-reply")
                try:
                    reply = tsa.respond(body)
                except (ValueError, IndexError):
                    reply = seq(seq(integer(2), seq(tlv(0x0C, b"bad request"))))
                self._send(200, reply, "application/timestamp-reply")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- response building --

    def respond(self, request_der: bytes) -> bytes:
        imprint, nonce, cert_req = parse_request(request_der)
        if self.mode == "reject":
            # PKIStatusInfo{rejection, "policy refused", failInfo badAlg(0)}
            return seq(seq(integer(2), seq(tlv(0x0C, b"policy refused")), tlv(0x03, b"\x07\x80")))
        if self.mode == "wrong_nonce" and nonce is not None:
            nonce += 1
        if self.mode == "no_nonce":
            nonce = None
        if self.mode == "wrong_imprint":
            alg_id = children(read_tlv(imprint)[1])[0][2]
            imprint = seq(alg_id, octets(b"\x00" * 32))
        status = 1 if self.mode == "mods" else 0
        token = self.token(imprint, nonce, cert_req and self.mode != "no_certs")
        return seq(seq(integer(status)), token)

    def token(self, imprint: bytes, nonce: int | None, include_cert: bool) -> bytes:
        self.serial += 1
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        tst_info = seq(integer(1), oid(POLICY), imprint, integer(self.serial), gentime(now),
                       integer(nonce) if nonce is not None else b"")
        cert_der = self.cert.public_bytes(serialization.Encoding.DER)
        sha256_alg = seq(oid(SHA256))
        ess_cert_id_v2 = seq(octets(hashlib.sha256(cert_der).digest()))   # hashAlgorithm: default sha256
        attrs = [
            seq(oid(ATTR_CONTENT_TYPE), set_of(oid(ID_CT_TSTINFO))),
            seq(oid(ATTR_MESSAGE_DIGEST), set_of(octets(hashlib.sha256(tst_info).digest()))),
            seq(oid(ATTR_SIGNING_CERT_V2), set_of(seq(seq(ess_cert_id_v2)))),
        ]
        signed_attrs = set_of(*attrs)                    # signature covers the SET OF encoding
        signature = self.key.sign(signed_attrs, ec.ECDSA(hashes.SHA256()))
        signer_info = seq(
            integer(1),
            seq(self.cert.issuer.public_bytes(), integer(self.cert.serial_number)),
            sha256_alg,
            b"\xa0" + signed_attrs[1:],                  # [0] IMPLICIT SET OF Attribute
            seq(oid(ECDSA_SHA256)),
            octets(signature),
        )
        signed_data = seq(
            integer(3),
            set_of(sha256_alg),
            seq(oid(ID_CT_TSTINFO), explicit(0, octets(tst_info))),
            tlv(0xA0, b"".join(sorted([cert_der, *self.chain]))) if include_cert else b"",  # [0] SET OF
            set_of(signer_info),
        )
        return seq(oid(ID_SIGNED_DATA), explicit(0, signed_data))
