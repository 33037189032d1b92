"""Talking to a running memeflow service: `MemeClient`, and indexing folders through it.
Needs no model library: plain dicts in and out."""

from memeflow.client.client import Hit, IndexReport, MemeClient, data_uri, parse_host
from memeflow.client.errors import RequestRefused, ServiceError

__all__ = ["Hit", "IndexReport", "MemeClient", "RequestRefused", "ServiceError", "data_uri",
           "parse_host"]
