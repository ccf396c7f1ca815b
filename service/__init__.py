"""Ticket Triage service: classification, similar-ticket search and routing over ONNX Runtime."""

__version__ = "0.1.0"
