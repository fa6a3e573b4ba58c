"""The bundle runtime that the cloud and every node share.

What reads, verifies and runs a model bundle exactly as a node does: the bundle
format and its manifest (``bundle``), the decision policy (``policy``), golden-image
parity (``golden``), signatures (``signing``), image decoding and resizing
(``imaging``), the ONNX Runtime engine (``engine``), the MQTT link both sides speak
(``mqtt_link``, with the verdict codes of ``verdict_codes``), mutual TLS and peer
identities (``tls``) and the error tree they raise (``errors``). The cloud imports from
``edge`` only this package, so evaluation scores a model as the line will; camera,
server, outbox and publisher stay the node's own.

Nothing is re-exported here: importing ``edge.runtime.errors`` must not load ONNX
Runtime.
"""
