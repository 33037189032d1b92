"""Checks on what comes from outside, without a running service: the Host/Origin policy,
the HTTP body and gRPC request checks, terminal-safe text, regular files only, `--where`
strings. The same kinds over a running service are in test_hostile.py."""

import json
import os
import re
import signal
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from jina.proto import jina_pb2

from memeflow.cli.search_flags import parse_cli_where
from memeflow.client.files import file_tags, scan_paths, sha256_file
from memeflow.encoder.fetch import read_source
from memeflow.gateway.grpc_limits import MAX_PROTO_DEPTH, check_request, proto_depth_over
from memeflow.gateway.hosts import HostPolicy, split_host
from memeflow.gateway.http_limits import MAX_JSON_DEPTH, check_body
from memeflow.regular_files import NotRegularFile, open_regular, read_regular
from memeflow.uris import ImageLoadError, terminal_safe

# --- DNS rebinding: which Host and Origin the HTTP port answers ----------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("localhost:51001", ("localhost", "51001")), ("LOCALHOST", ("localhost", "")),
    ("[::1]:51001", ("::1", "51001")), ("::1", ("::1", "")), ("memes.lan.:80", ("memes.lan", "80")),
])
def test_split_host(value: str, expected: tuple[str, str]) -> None:
    assert split_host(value) == expected


def test_only_the_services_own_names_are_answered_by_default() -> None:
    policy = HostPolicy(allowed=frozenset(), bind="127.0.0.1")
    for host in ("localhost:51001", "127.0.0.1:51001", "[::1]:51001", "app.localhost:51001",
                 "192.168.1.20:51001", "localhost."):
        assert policy.refusal("POST", "/search", {"host": host}, 51001) is None, host
    for host in ("attacker.example:51001", "localhost.attacker.example", "memes.lan:51001",
                 "127.0.0.1.nip.io:51001"):
        reason = policy.refusal("POST", "/clear", {"host": host}, 51001)
        assert reason and "is not a name of this service" in reason, host
        assert "http://localhost:51001/" in reason and "MEMEFLOW_ALLOWED_HOSTS" in reason
    # Health checks reveal nothing: open whatever the name.
    assert policy.refusal("GET", "/dry_run", {"host": "gateway:51001"}, 51001) is None


def test_the_allow_list_and_the_bind_address_add_names() -> None:
    policy = HostPolicy(allowed=frozenset({"memes.lan", "proxy.example:8443"}),
                        bind="memes-box")
    for host in ("memes.lan:51001", "memes.lan", "proxy.example:8443", "memes-box:51001"):
        assert policy.refusal("GET", "/", {"host": host}, 51001) is None, host
    assert policy.refusal("GET", "/", {"host": "proxy.example:9000"}, 51001)
    anything = HostPolicy(allowed=frozenset({"*"}), bind="0.0.0.0")
    assert anything.refusal("GET", "/", {"host": "whatever.example"}, 51001) is None
    assert HostPolicy(allowed=frozenset(), bind="0.0.0.0").refusal(
        "GET", "/", {"host": "0.0.0.0:51001"}, 51001) is None  # an address


def test_browsers_pages_of_other_sites_are_refused() -> None:
    policy = HostPolicy(allowed=frozenset({"memes.example"}), bind="127.0.0.1")
    own = {"host": "localhost:51001"}
    allowed = [{"origin": "http://localhost:51001"}, {"origin": "https://memes.example"},
               {"sec-fetch-site": "same-origin", "sec-fetch-mode": "cors"},
               {"sec-fetch-site": "none", "sec-fetch-mode": "navigate"},
               # a link from another site to the page (or to /?q=...) opens it
               {"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"}]
    for headers in allowed:
        assert policy.refusal("GET", "/", own | headers, 51001) is None, headers
    refused = [{"origin": "http://evil.example"}, {"origin": "null"},
               {"origin": "http://localhost:3000"},  # another site on this machine
               {"origin": "http://127.0.0.1:51001"},  # another name: another origin
               {"sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors"},  # <img> elsewhere
               {"sec-fetch-site": "same-site", "sec-fetch-mode": "cors"}]
    for headers in refused:
        reason = policy.refusal("POST", "/delete", own | headers, 51001)
        assert reason and "another site" in reason, headers


# --- malformed requests: depth and Unicode, checked iteratively ----------------------------


def nested(depth: int, kind: str = "list") -> object:
    value: object = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


def test_body_checks_are_iterative_and_find_problems_anywhere() -> None:
    payload, problem = check_body(b'{"data": [{"text": "cat"}], "parameters": {"top_k": 3}}')
    assert payload["parameters"] == {"top_k": 3} and problem is None
    for body in (rb'{"data": [{"text": "cat \ud800"}]}', rb'{"data": [{"tags": {"\udc00": 1}}]}',
                 rb'{"data": [{"tags": {"t": ["ok", "\udfff"]}}]}',
                 rb'{"data": [], "parameters": {"where": {"a": {"$eq": "\ud83d"}}}}'):
        assert "not Unicode text" in (check_body(body)[1] or ""), body
    assert check_body(rb'{"text": "\ud83d\ude02"}')[1] is None  # a pair is an emoji
    # The body counts as 1: tags hold MAX_JSON_DEPTH - 4 levels, a `where` - 3.
    limit = MAX_JSON_DEPTH - 4
    assert check_body(json.dumps({"data": [{"tags": {"t": nested(limit)}}]}).encode())[1] \
        is None
    for depth in (limit + 1, 50, 100_000):
        body = json.dumps({"data": [{"tags": {"t": nested(min(depth, 500))}}]}).encode()
        if depth == 100_000:  # past Python's own parser: refused the same way
            body = b'{"data": [], "parameters": {"where": ' + b"[" * depth + b"]" * depth + b"}}"
        assert f"more than {MAX_JSON_DEPTH} deep" in (check_body(body)[1] or ""), depth
    assert check_body(b"{not json") == (None, None)  # Jina's 422


def request_bytes(parameters: dict | None = None, text: str = "cat MARK") -> bytes:
    request = jina_pb2.DataRequestProto()
    request.header.exec_endpoint = "/search"
    doc = request.data.docs.docs.add()
    doc.data["text"].text = text
    if parameters:
        request.parameters.update(parameters)
    return request.SerializeToString()


def test_grpc_requests_that_do_not_parse_or_nest_too_deep_are_found() -> None:
    assert check_request(request_bytes({"where": {"folder": {"$eq": "drake"}}})) is None
    not_utf8 = request_bytes().replace(b"MARK", b"\xed\xa0\x80!")  # a surrogate, as UTF-8
    assert "not UTF-8" in (check_request(not_utf8) or "")
    too_deep = request_bytes({"x": nested(40, "dict")})  # past protobuf's 100 levels
    assert "not valid protobuf" in (check_request(too_deep) or "")
    deep = jina_pb2.DataRequestProto.FromString(request_bytes({"x": nested(25, "dict")}))
    assert proto_depth_over(deep, MAX_PROTO_DEPTH) is not None
    assert f"over {MAX_PROTO_DEPTH} levels" in (check_request(deep.SerializeToString()) or "")
    shallow = jina_pb2.DataRequestProto.FromString(request_bytes({"x": nested(5, "dict")}))
    assert proto_depth_over(shallow, MAX_PROTO_DEPTH) is None


# --- text from outside on a terminal -------------------------------------------------------


@pytest.mark.parametrize(("text", "shown"), [
    ("x\x1b[2J\x1b]0;pwned\a.jpg", r"x\x1b[2J\x1b]0;pwned\x07.jpg"),
    ("two\nlines\r\tand tab", r"two\nlines\r\tand tab"),
    ("\x9b31m C1 CSI \x7f", r"\x9b31m C1 CSI \x7f"),
    ("gpj.\u202eexe", r"gpj.\u202eexe"), ("line\u2028sep", r"line\u2028sep"),
    ("caf\udce9.jpg", r"caf\xe9.jpg"),  # an undecodable file name byte
    ("😂 👨‍👩‍👧 درج עברית", "😂 👨‍👩‍👧 درج עברית"),  # emoji (with joiners), RTL text
])
def test_terminal_safe_escapes_what_a_terminal_acts_on(text: str, shown: str) -> None:
    assert terminal_safe(text) == shown
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in terminal_safe(text))


# --- only regular files are read ---------------------------------------------------------


@pytest.fixture
def alarm() -> Iterator[None]:
    """A read that blocks fails the test after 20 s instead of hanging the suite."""
    def timeout(*_: object) -> None:
        raise TimeoutError("a read blocked")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def odd_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """A FIFO, a socket, a character device and links to them, all named as images."""
    os.mkfifo(tmp_path / "pipe.jpg")
    server = socket.socket(socket.AF_UNIX)
    with monkeypatch.context() as here:  # a relative name: socket paths have a short limit
        here.chdir(tmp_path)
        server.bind("sock.png")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    (tmp_path / "link-to-pipe.jpg").symlink_to(tmp_path / "pipe.jpg")
    yield {"pipe.jpg": tmp_path / "pipe.jpg", "sock.png": tmp_path / "sock.png",
           "zero.png": tmp_path / "zero.png", "link-to-pipe.jpg": tmp_path / "link-to-pipe.jpg"}
    server.close()


KINDS = {"pipe.jpg": "a named pipe (FIFO)", "sock.png": "a socket",
         "zero.png": "a character device", "link-to-pipe.jpg": "a named pipe (FIFO)"}


def test_odd_files_fail_alone_named_or_in_a_folder(tmp_path, odd_files, alarm) -> None:
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "good.png")
    for scan in (scan_paths([tmp_path]), scan_paths([tmp_path / "good.png", *odd_files.values()])):
        assert scan.files == [tmp_path / "good.png"]
        assert dict(scan.failed) == {
            path: f"not a regular file: {KINDS[name]}" for name, path in odd_files.items()}


def test_no_read_blocks_on_an_odd_file(tmp_path, odd_files, alarm, monkeypatch) -> None:
    for name, path in odd_files.items():
        with pytest.raises(NotRegularFile, match=re.escape(f"{path}: not a regular file: "
                                                           f"{KINDS[name]}")):
            sha256_file(path)
        with pytest.raises(ImageLoadError, match=r"is not a regular file"):
            read_source(str(path), None)
    # Swapped for a FIFO between the check and the open: the open does not block, and
    # what was opened is refused.
    real_stat = os.stat
    regular = real_stat(__file__)
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: regular if str(p).endswith(
        "pipe.jpg") else real_stat(p, *a, **k))
    with pytest.raises(NotRegularFile, match="named pipe"):
        open_regular(odd_files["pipe.jpg"])
    with pytest.raises(ImageLoadError, match="is not a regular file: a named pipe"):
        read_source(str(odd_files["pipe.jpg"]), None)
    assert read_regular(__file__, 10) == Path(__file__).read_bytes()[:11]


def test_odd_sidecars_and_ignore_files_are_reported_not_read(tmp_path, alarm, caplog) -> None:
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    os.mkfifo(tmp_path / "a.json")
    os.mkfifo(tmp_path / "meta.yml")
    os.mkfifo(tmp_path / ".memeflowignore")
    assert file_tags(tmp_path / "a.png") == {"file": "a.png", "folder": tmp_path.name}
    warned = [r.getMessage() for r in caplog.records]
    assert any("meta.yml: not a regular file: a named pipe" in m for m in warned), warned
    assert any("a.json: not a regular file: a named pipe" in m for m in warned), warned
    scan = scan_paths([tmp_path])
    assert scan.files == [tmp_path / "a.png"]
    assert dict(scan.failed) == {tmp_path / ".memeflowignore":
                                 "cannot read ignore file: not a regular file: a named pipe (FIFO)"}
    assert stat.S_ISFIFO(os.stat(tmp_path / "a.json").st_mode)  # untouched


# --- --where states a string exactly ---------------------------------------------------------


def test_where_values_in_quotes_are_strings() -> None:
    assert parse_cli_where(['zip="007"', "version='1.10'", 'flag="true"', "n=7", "b=true",
                            "v=1.10"]) == {
        "zip": {"$eq": "007"}, "version": {"$eq": "1.10"}, "flag": {"$eq": "true"},
        "n": {"$eq": 7}, "b": {"$eq": True}, "v": {"$eq": 1.1}}
    assert parse_cli_where(['zip="007"|"008"|9', 'name="a|b"', "t~007", 't~"x y"']) == {
        "zip": {"$in": ["007", "008", 9]}, "name": {"$eq": "a|b"},
        "t": {"$contains": "x y"}}  # the second contains condition on t replaces the first
    assert parse_cli_where(["t~007"]) == {"t": {"$contains": "007"}}  # always a string
    assert parse_cli_where(['q=""']) == {"q": {"$eq": ""}}
    assert parse_cli_where(['q="']) == {"q": {"$eq": '"'}}  # unmatched: as written


def test_serve_forwards_the_flows_log_with_outside_text_escaped() -> None:
    """A refusal line quotes what a client sent; `memeflow serve` prints the Flow's log."""
    import io
    from types import SimpleNamespace

    from memeflow.cli.serve import READY_LINE, FlowProcess

    flow = FlowProcess(log=io.StringIO())
    flow.process = SimpleNamespace(stdout=iter([  # type: ignore[assignment]
        "WARNING indexer/rep-0 refused /search: where['\x1b]0;pwned\a'] must be an object\n",
        f"{READY_LINE}: gRPC localhost:51000\n"]))
    flow._watch_output()
    shown = flow.log.getvalue()  # type: ignore[attr-defined]
    assert shown.splitlines() == [
        "WARNING indexer/rep-0 refused /search: where['\\x1b]0;pwned\\x07'] must be an object",
        f"{READY_LINE}: gRPC localhost:51000"]
    assert flow.ready.is_set()
