"""Who may call the node: mutual TLS at the door, then one rule per service.

The TLS layer already refused anyone without a certificate from the plant CA.
This module decides what a verified certificate may do, because a camera-line
laptop holding a ``client`` certificate must be able to ask for verdicts and
never to swap the model:

- InspectionService: any plant certificate (node, deployer, client, collector)
  that the CA has not revoked;
- ModelService: the ``deployer`` role only (PERMISSION_DENIED otherwise);
- a revoked certificate: UNAUTHENTICATED, on its next call, without a restart
  (``crl.pem`` is re-read when it changes);
- health and reflection: any peer the TLS layer let in (probes hold no role).

A node without certificates refuses to start unless told ``insecure``: a
plaintext node must be somebody's explicit choice, never an accident of a
missing flag.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from linewatch.v1 import inspection_pb2, model_service_pb2

from edge.metrics import NodeMetrics
from edge.runtime.errors import ConfigError
from edge.runtime.tls import RevocationList, Role, TlsFiles, peer_identity, server_credentials
from edge.settings import EdgeSettings

__all__ = ["AuthorizationInterceptor", "NodeTransport", "node_transport", "tls_files"]

logger = logging.getLogger(__name__)

_INSPECTION = inspection_pb2.DESCRIPTOR.services_by_name["InspectionService"].full_name
_MODELS = model_service_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name
# Which roles may call each service; methods of other services (health, reflection) pass.
_ALLOWED: dict[str, frozenset[Role]] = {
    f"/{_INSPECTION}/": frozenset(Role),
    f"/{_MODELS}/": frozenset({Role.DEPLOYER}),
}

Refusal = tuple[grpc.StatusCode, str]


class AuthorizationInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Refuses calls whose certificate is revoked or whose role may not use the service."""

    def __init__(self, revocations: RevocationList, metrics: NodeMetrics | None = None) -> None:
        self.revocations = revocations
        self.metrics = metrics

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        """Wrap our services' handlers with the check; health and reflection pass untouched."""
        handler = continuation(handler_call_details)
        method = str(handler_call_details.method)
        allowed = next((roles for p, roles in _ALLOWED.items() if method.startswith(p)), None)
        if handler is None or allowed is None:
            return handler
        codec = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        check = self._checker(method, allowed)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _guard_unary(handler.unary_unary, check), **codec
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _guard_unary(handler.stream_unary, check), **codec
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _guard_stream(handler.stream_stream, check), **codec
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _guard_stream(handler.unary_stream, check), **codec
            )
        return handler

    def _checker(
        self, method: str, allowed: frozenset[Role]
    ) -> Callable[[grpc.ServicerContext], None]:
        def check(context: grpc.ServicerContext) -> None:
            refusal = self.refusal(context, method, allowed)
            if refusal is None:
                return
            code, message = refusal
            if self.metrics:
                self.metrics.requests_failed.labels(code=code.name).inc()
            context.abort(code, message)

        return check

    def refusal(
        self, context: grpc.ServicerContext, method: str, allowed: frozenset[Role]
    ) -> Refusal | None:
        """Why this caller may not call ``method``, or None when it may."""
        peer = peer_identity(context)
        if peer is None:  # only on a plaintext port, which never gets this interceptor
            return grpc.StatusCode.UNAUTHENTICATED, "no client certificate: use the plant CA's"
        try:
            revoked = self.revocations.is_revoked(peer.serial)
        except ConfigError as exc:  # refuse rather than let a revoked peer in
            logger.error("revocation list unusable, call refused method=%s reason=%s", method, exc)
            return grpc.StatusCode.UNAUTHENTICATED, (
                "the node cannot check revocations (its crl.pem is unreadable); "
                "copy the CA's crl.pem to the node again"
            )
        serial = f"{peer.serial:x}"
        if revoked:
            logger.warning("revoked certificate refused name=%s serial=%s", peer.name, serial)
            return grpc.StatusCode.UNAUTHENTICATED, (
                f"certificate {peer.name!r} (serial {serial}) is revoked by the plant CA; "
                "issue a new one with `linewatch certs issue`"
            )
        if peer.role not in allowed:
            role = peer.role.value if peer.role else "no role"
            may = ", ".join(sorted(r.value for r in allowed))
            logger.warning("call refused method=%s name=%s role=%s", method, peer.name, role)
            return grpc.StatusCode.PERMISSION_DENIED, (
                f"certificate {peer.name!r} ({role}) may not call {method}; only {may} "
                "certificates may (`linewatch certs issue --deployer` for model pushes)"
            )
        return None


def _guard_unary(
    behavior: Callable[..., Any], check: Callable[[grpc.ServicerContext], None]
) -> Callable[..., Any]:
    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        check(context)
        return behavior(request, context)

    return unary


def _guard_stream(
    behavior: Callable[..., Any], check: Callable[[grpc.ServicerContext], None]
) -> Callable[..., Any]:
    def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        check(context)
        yield from behavior(request, context)

    return stream


@dataclass(frozen=True)
class NodeTransport:
    """How the node's port is bound: credentials (None: plaintext) and interceptors first."""

    credentials: grpc.ServerCredentials | None
    interceptors: list[grpc.ServerInterceptor] = field(default_factory=list)


_FLAGS = {"tls_cert": "--tls-cert", "tls_key": "--tls-key", "tls_ca": "--tls-ca"}


def tls_files(settings: EdgeSettings) -> TlsFiles | None:
    """The node's TLS files, or None when it was told ``insecure``; checks the choice only.

    Cheap (no file is read), so ``linewatch-edge serve`` calls it before opening
    anything, and a node with neither certificates nor ``--insecure`` stops at once.

    Raises:
        ConfigError: no certificates and not ``insecure``; certificates and ``insecure``
            both; some of the three TLS files but not all.
    """
    given = {name: getattr(settings, name) for name in (*_FLAGS, "tls_crl")}
    if settings.insecure:
        if any(given.values()):
            msg = "grpc: --insecure and TLS files both given; drop one (TLS is the default)"
            raise ConfigError(msg)
        return None
    missing = [flag for name, flag in _FLAGS.items() if given[name] is None]
    if len(missing) == len(_FLAGS):
        msg = (
            f"grpc: node {settings.node!r} has no TLS certificate; pass --tls-cert/--tls-key/"
            f"--tls-ca (issued by `linewatch certs issue --node {settings.node}`) or --insecure "
            "for a lab"
        )
        raise ConfigError(msg)
    if missing or not (settings.tls_cert and settings.tls_key and settings.tls_ca):
        msg = f"grpc: TLS needs --tls-cert, --tls-key and --tls-ca; missing {', '.join(missing)}"
        raise ConfigError(msg)
    return TlsFiles(settings.tls_cert, settings.tls_key, settings.tls_ca)


def node_transport(settings: EdgeSettings, metrics: NodeMetrics | None = None) -> NodeTransport:
    """Mutual TLS with authorisation from the settings, or plaintext if ``insecure``.

    Raises:
        ConfigError: what :func:`tls_files` refuses; a file that cannot be read; an
            expired certificate; a revocation list that is missing or not signed by the CA.
    """
    files = tls_files(settings)
    if files is None:
        logger.warning(
            "gRPC is PLAINTEXT (insecure): anyone on the network may inspect and push models "
            "node=%s; use --tls-cert/--tls-key/--tls-ca outside a lab",
            settings.node,
        )
        return NodeTransport(None)
    credentials = server_credentials(files)  # reads all three: unreadable ones are named
    _require_current(files.certificate)
    revocations = RevocationList(settings.tls_crl, files.ca)
    if settings.tls_crl is not None:
        if not settings.tls_crl.is_file():
            msg = f"grpc: revocation list {settings.tls_crl} does not exist; copy the CA's crl.pem"
            raise ConfigError(msg)
        revocations.is_revoked(0)  # loads and verifies it now, so a bad list stops the start
    logger.info("gRPC mutual TLS certificate=%s crl=%s", files.certificate, settings.tls_crl)
    return NodeTransport(credentials, [AuthorizationInterceptor(revocations, metrics)])


def _require_current(path: Path) -> None:
    """Refuse to start on an expired certificate: every handshake would fail, unexplained."""
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError as exc:
        msg = f"grpc: TLS certificate {path} is not a PEM certificate ({exc})"
        raise ConfigError(msg) from exc
    not_after = certificate.not_valid_after_utc
    if not_after <= dt.datetime.now(dt.UTC):
        msg = (
            f"grpc: TLS certificate {path} expired on {not_after:%Y-%m-%d}; "
            "issue a new one with `linewatch certs issue --node NAME`"
        )
        raise ConfigError(msg)
