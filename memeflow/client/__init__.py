"""Talking to a running memeflow service: `MemeClient` (client.py), and keeping the index in
step with folders through it (sync.py: files, sidecars, moves, prune). Needs no model
library: plain dicts in and out."""

from memeflow.client.client import MemeClient, data_uri, parse_host
from memeflow.client.errors import RequestRefused, ServiceError
from memeflow.client.sync import IndexReport
from memeflow.fields import Hit

__all__ = ["Hit", "IndexReport", "MemeClient", "RequestRefused", "ServiceError", "data_uri",
           "parse_host"]
