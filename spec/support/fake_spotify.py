#!/usr/bin/env python3
"""A fake Spotify Web API for the test suite, over real HTTP/1.1 and TLS.

Answers the token endpoint and the catalog from the captured fixtures in
spec/support/fixtures, with the ID of each request put into the answer.
Tests steer it through /_control/* (config, faults, reset, log). Standard
library only, so it runs wherever python3 does.

    fake_spotify.py [--port-file F] [--port P] [--tls-cert C --tls-key K [--tls-port P]] [--demo]

--demo (config "demo") is for people looking at the answers (`make demo`):
single objects come from every fixture that holds one (a track by its own
ID, an unknown ID gets one of the captured tracks, so names vary), and every
paging object's total is the number of items it really lists, so a playlist
that says 4 items lists 4. Without it the answers keep the fixtures' totals
and cycle their items, which the specs rely on.

Config "gzip" gzips the answers of requests whose Accept-Encoding names gzip;
the log then says per request what it sent ("sent": body bytes on the wire,
"content_encoding"). Faults "gzip_bomb" (`size` zero bytes gzipped),
"gzip_truncated" and "encoding" (an answer labelled with another
Content-Encoding) test the clients' inflating.

prints "<http port> [<tls port>]" (and writes it to F) once the listeners
accept, and exits on /_control/stop or when its parent process ends.
"""
import argparse
import base64
import copy
import hashlib
import io
import zlib
import json
import os
import re
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
ORIGIN = "https://api.spotify.com/v1"
BASE62_ID = re.compile(r"^[0-9A-Za-z]{22}$")

DEFAULT_CONFIG = {
    "expires_in": 3600,
    "credentials": {"test-id": "test-secret"},
    "no_batch": False,      # batch endpoints (?ids=) answer 403, as for new apps in 2026
    "no_items": False,      # /playlists/{id}/items answers 404, older API
    "devmode": False,       # single tracks answer the reduced 2026 dev-mode shape
    "totals": {},           # route name -> total of its paging object
    "max_ids": {},          # batch route -> IDs allowed per request (overrides)
    "demo": False,          # varied objects and totals that match the items (--demo)
    "gzip": False,          # answers gzipped when the request's Accept-Encoding names gzip
    "etags": True,          # catalog answers carry ETag and Last-Modified; a match answers 304
}

# Every catalog answer's Last-Modified (the fixtures never change).
LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"

BATCH_MAX = {"tracks": 50, "albums": 20, "artists": 50, "shows": 50,
             "episodes": 50, "audiobooks": 50, "chapters": 50, "audio-features": 100}


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return json.loads(f.read().decode("utf-8"))


class State:
    """Everything the tests can change or read, behind one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.gates = threading.Condition()
        self.conn_ids = 0
        self.reset()

    def meet(self, name, n, seconds, entry):
        """Holds a request until `n` requests of barrier `name` have arrived,
        at most `seconds`; True when they did (the requests were in flight
        together), False on giving up. The request that completes the
        barrier marks every log entry waiting at it `met` before any of
        them is answered, so a spec that has its answer finds them all
        marked, however late the other threads wake up."""
        with self.gates:
            waiting = self.waiting.setdefault(name, [])
            waiting.append(entry)
            self.arrived[name] = self.arrived.get(name, 0) + 1
            if self.arrived[name] >= n:
                for e in waiting:
                    e["met"] = True
                waiting.clear()
                self.gates.notify_all()
                return True
            if self.gates.wait_for(lambda: self.arrived.get(name, 0) >= n, timeout=seconds):
                return True
            waiting[:] = [e for e in waiting if e is not entry]
            entry["met"] = False
            return False

    def reset(self):
        with self.lock:
            self.config = copy.deepcopy(DEFAULT_CONFIG)
            self.faults = []
            self.log = []
            self.tokens = {}     # token -> expires_at (monotonic)
            self.issued = 0
        with self.gates:
            self.arrived = {}    # barrier name -> requests arrived
            self.waiting = {}    # barrier name -> log entries held at it

    def next_conn(self):
        with self.lock:
            self.conn_ids += 1
            return self.conn_ids

    def configure(self, changes):
        with self.lock:
            for key, value in changes.items():
                if key == "faults":
                    self.faults = [dict(f) for f in value]
                    with self.gates:
                        self.arrived = {}
                        self.waiting = {}
                elif key == "revoke":
                    if value:
                        self.tokens = {}
                else:
                    self.config[key] = value

    def take_fault(self, method, path, query):
        with self.lock:
            for f in self.faults:
                if f.get("times", 1) == 0:
                    continue
                if not path.startswith(f.get("path", "")):
                    continue
                if f.get("method") and f["method"] != method:
                    continue
                if f.get("query_contains") and f["query_contains"] not in query:
                    continue
                if f.get("times", 1) > 0:
                    f["times"] = f.get("times", 1) - 1
                return dict(f)
        return None

    def issue_token(self):
        with self.lock:
            self.issued += 1
            # config token_prefix: tokens holding characters a secret may hold
            token = "%s-%d-%d" % (self.config.get("token_prefix", "tok"), os.getpid(), self.issued)
            self.tokens[token] = time.monotonic() + self.config["expires_in"]
            return token, self.config["expires_in"]

    def token_state(self, token):
        with self.lock:
            expires = self.tokens.get(token)
        if expires is None:
            return "invalid"
        return "ok" if expires > time.monotonic() else "expired"


STATE = State()
STOP = threading.Event()


class Answer(Exception):
    def __init__(self, status, body, headers=None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def error(status, name):
    return Answer(status, fixture(name))


def spotify_error(status, message):
    return Answer(status, {"error": {"status": status, "message": message}})


def with_id(obj, kind, new_id):
    """The fixture object, renamed to the requested ID."""
    obj = copy.deepcopy(obj)
    old = obj.get("id")
    obj["id"] = new_id
    for field in ("uri", "href"):
        if isinstance(obj.get(field), str) and old:
            obj[field] = obj[field].replace(old, new_id)
    if isinstance(obj.get("external_urls"), dict) and old:
        obj["external_urls"] = {k: v.replace(old, new_id) for k, v in obj["external_urls"].items()}
    return obj


def check_id(value):
    if not BASE62_ID.match(value):
        raise error(400, "error_400_invalid_base62_id.json")
    return value


def known(value):
    return not value.startswith("Unknown")


def int_param(query, name, default, low, high):
    raw = query.get(name, [str(default)])[0]
    try:
        value = int(raw)
    except ValueError:
        raise spotify_error(400, "Invalid %s" % name)
    if value < low or value > high:
        raise spotify_error(400, "Invalid %s" % name)
    return value


def page(base, path, query, items, total, max_limit=50, default_limit=20):
    """A paging object over `total` items, cycling the fixture's items (in
    demo mode `total` is at most the number of distinct items)."""
    if STATE.config.get("demo"):
        total = min(total, len(items))
    limit = int_param(query, "limit", default_limit, 1, max_limit)
    offset = int_param(query, "offset", 0, 0, 100000)
    end = min(offset + limit, total)
    chosen = [copy.deepcopy(items[i % len(items)]) for i in range(offset, end)] if items else []

    def link(off):
        q = {k: v[0] for k, v in query.items()}
        q.update(offset=str(off), limit=str(limit))
        return base + path + "?" + urllib.parse.urlencode(sorted(q.items()))

    return {
        "href": link(offset),
        "items": chosen,
        "limit": limit,
        "next": link(end) if end < total else None,
        "offset": offset,
        "previous": link(max(0, offset - limit)) if offset > 0 else None,
        "total": total,
    }


def total_for(route, default):
    return STATE.config.get("totals", {}).get(route, default)


# --- catalog ----------------------------------------------------------------

SINGLE = {  # route -> (fixture, type)
    "tracks": ("track.json", "track"),
    "albums": ("album.json", "album"),
    "artists": ("artist.json", "artist"),
    "shows": ("show.json", "show"),
    "episodes": ("episode.json", "episode"),
    "audiobooks": ("audiobook.json", "audiobook"),
    "chapters": ("chapter.json", "chapter"),
    "audio-features": ("audio_features.json", "audio_features"),
}


def demo_pool(route):
    """Full objects of one type found anywhere in the fixtures, in a fixed order."""
    out = [fixture(SINGLE[route][0])]
    if route == "tracks":
        out += [t for t in fixture("tracks_several.json")["tracks"] if t]
        out += fixture("search_track_artist_album.json")["tracks"]["items"]
        out += [i["track"] for i in fixture("playlist.json")["tracks"]["items"] if i.get("track")]
    elif route == "artists":
        out += fixture("search_track_artist_album.json")["artists"]["items"]
    return out


# IDs the examples and the README look up: the route's own fixture answers
# them, as in the default mode.
DEMO_EXAMPLE_IDS = {"tracks": "4iV5W9uYEdYUVa79Axb7Rh", "artists": "0TnOYISbd1XYRBk9myaseg"}


def demo_single(route, item_id):
    """The fixture object with this ID, else one picked by the ID (stable
    across runs), renamed to it."""
    pool = demo_pool(route)
    if DEMO_EXAMPLE_IDS.get(route) == item_id:
        return with_id(pool[0], route, item_id)
    for obj in pool:
        if obj.get("id") == item_id:
            return copy.deepcopy(obj)
    obj = pool[zlib.crc32(item_id.encode()) % len(pool)]
    return with_id(obj, route, item_id)


def single(route, item_id):
    check_id(item_id)
    if not known(item_id):
        raise error(404, "error_404_non_existing_id.json")
    name = SINGLE[route][0]
    if route == "tracks" and STATE.config.get("devmode"):
        name = "track_devmode_2026.json"
    elif STATE.config.get("demo"):
        obj = demo_single(route, item_id)
        if route == "shows":  # the show's own count agrees with its episodes
            obj["total_episodes"] = obj["episodes"]["total"] = len(obj["episodes"]["items"])
        return obj
    return with_id(fixture(name), route, item_id)


def several(route, query):
    if STATE.config.get("no_batch"):
        raise error(403, "error_403_forbidden.json")
    raw = query.get("ids", [""])[0]
    ids = [i for i in raw.split(",") if i]
    if not ids:
        raise spotify_error(400, "invalid id")
    limit = STATE.config.get("max_ids", {}).get(route, BATCH_MAX[route])
    if len(ids) > limit:
        raise spotify_error(400, "Too many ids requested")
    key = route.replace("-", "_")
    out = []
    for i in ids:
        check_id(i)
        out.append(single(route, i) if known(i) else None)
    return {key: out}


def search(base, query):
    q = query.get("q", [""])[0]
    if not q:
        raise spotify_error(400, "No search query")
    types = [t for t in query.get("type", [""])[0].split(",") if t]
    if not types:
        raise spotify_error(400, "Missing parameter type")
    data = fixture("search_track_artist_album.json")
    out = {}
    for t in types:
        key = t + "s"
        if key not in ("tracks", "artists", "albums", "playlists", "shows", "episodes", "audiobooks"):
            raise spotify_error(400, "Bad search type field %s" % t)
        items = data[key]["items"] if key in data else []
        total = total_for("search", data[key]["total"] if key in data else 0)
        out[key] = page(base, "/search", query, items, total, max_limit=50, default_limit=5)
    return out


def playlist_items(base, pid, path, query):
    check_id(pid)
    if not known(pid):
        raise error(404, "error_404_resource_not_found.json")
    data = fixture("playlist_items.json")
    if STATE.config.get("demo"):  # the playlist's own items, as many as it says
        data = fixture("playlist.json")["tracks"]
    return page(base, path, query, data["items"], total_for("playlist_items", data["total"]),
                max_limit=100, default_limit=100)


def simplified_playlist(pid):
    p = with_id(fixture("playlist.json"), "playlists", pid)
    p["tracks"] = {"href": p["href"] + "/tracks", "total": p["tracks"]["total"]}
    return p


def me(token):
    """The current user's profile: one user per token, named after it."""
    user = "user-" + token.replace("-", "")[-12:]
    return {"id": user, "type": "user", "display_name": user, "uri": "spotify:user:" + user,
            "href": ORIGIN + "/users/" + user, "product": "premium", "country": "SE"}


def route_catalog(base, path, query):
    parts = path[len("/v1/"):].split("/")
    head, rest = parts[0], parts[1:]
    if head in SINGLE and not rest:
        return several(head, query)
    if head in SINGLE and len(rest) == 1:
        return single(head, rest[0])
    if head in SINGLE and len(rest) == 2:
        item_id, sub = check_id(rest[0]), rest[1]
        if not known(item_id):
            raise error(404, "error_404_non_existing_id.json")
        if (head, sub) == ("albums", "tracks"):
            data = fixture("album_tracks.json")
            return page(base, path[3:], query, data["items"], total_for("album_tracks", data["total"]))
        if (head, sub) == ("artists", "albums"):
            data = fixture("artist_albums.json")
            return page(base, path[3:], query, data["items"], total_for("artist_albums", data["total"]),
                        default_limit=5, max_limit=50)
        if (head, sub) == ("artists", "top-tracks"):
            return fixture("artist_top_tracks.json")
        if (head, sub) == ("artists", "related-artists"):
            artist = fixture("artist.json")
            return {"artists": [with_id(artist, "artists", "0%021d" % n) for n in range(1, 4)]}
        if (head, sub) == ("shows", "episodes"):
            data = fixture("show.json")["episodes"]
            return page(base, path[3:], query, data["items"], total_for("show_episodes", data["total"]))
        if (head, sub) == ("audiobooks", "chapters"):
            data = fixture("audiobook_chapters.json")
            return page(base, path[3:], query, data["items"], total_for("audiobook_chapters", data["total"]))
    if head == "search" and not rest:
        return search(base, query)
    if head == "playlists" and len(rest) == 1:
        check_id(rest[0])
        if not known(rest[0]):
            raise error(404, "error_404_resource_not_found.json")
        return with_id(fixture("playlist.json"), "playlists", rest[0])
    if head == "playlists" and rest[1:] == ["images"]:
        check_id(rest[0])
        if not known(rest[0]):
            raise error(404, "error_404_resource_not_found.json")
        return fixture("playlist.json")["images"]  # the endpoint answers a bare array
    if head == "playlists" and len(rest) == 2 and rest[1] in ("items", "tracks"):
        if rest[1] == "items" and STATE.config.get("no_items"):
            raise error(404, "error_404_resource_not_found.json")
        return playlist_items(base, rest[0], path[3:], query)
    if head == "users" and len(rest) >= 1:
        owner = fixture("playlist.json")["owner"]
        user = with_id(owner, "users", rest[0])
        if len(rest) == 1:
            return user
        if rest[1:] == ["playlists"]:
            items = [simplified_playlist(fixture("playlist.json")["id"])]
            return page(base, path[3:], query, items, total_for("user_playlists", 3))
    if head == "browse" and rest == ["categories"]:
        data = fixture("browse_categories.json")["categories"]
        return {"categories": page(base, path[3:], query, data["items"], total_for("categories", data["total"]))}
    if head == "browse" and len(rest) == 2 and rest[0] == "categories":
        cat = fixture("browse_category.json")
        cat["id"] = rest[1]
        return cat
    if head == "browse" and len(rest) == 3 and rest[0] == "categories" and rest[2] == "playlists":
        items = [simplified_playlist(fixture("playlist.json")["id"])]
        return {"message": "Popular Playlists",
                "playlists": page(base, path[3:], query, items, total_for("category_playlists", 2))}
    if head == "browse" and rest == ["featured-playlists"]:
        items = [simplified_playlist(fixture("playlist.json")["id"])]
        return {"message": "Featured",
                "playlists": page(base, path[3:], query, items, total_for("featured_playlists", 2))}
    if head == "browse" and rest == ["new-releases"]:
        data = fixture("new_releases.json")["albums"]
        return {"albums": page(base, path[3:], query, data["items"], total_for("new_releases", data["total"]))}
    if head == "markets" and not rest:
        return fixture("markets.json")
    if head == "recommendations" and not rest:
        return fixture("recommendations.json")
    if head == "recommendations" and rest == ["available-genre-seeds"]:
        return fixture("genre_seeds.json")
    raise error(404, "error_404_resource_not_found.json")


# --- HTTP -------------------------------------------------------------------

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


class ArrivalReader(io.RawIOBase):
    """The connection's reads, noting when the kernel received their bytes.

    A request's `arrived` is that moment (the kernel's receive timestamp),
    as a server counting requests sees them; `time` is when this process
    got to handle it, which can be much later on a busy machine."""

    def __init__(self, sock):
        super().__init__()
        self.sock = sock
        self.first = None  # the receive time of the first read since mark()
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)

    def readable(self):
        return True

    def readinto(self, b):
        n, anc, _, _ = self.sock.recvmsg_into([b], socket.CMSG_SPACE(16))
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                sec, nsec = struct.unpack("qq", data[:16])
                if self.first is None:
                    self.first = sec + nsec / 1e9
        return n

    def mark(self):
        self.first = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeSpotify/1.0"

    def setup(self):
        super().setup()
        # Answers go out at once instead of waiting for the client's delayed ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn_id = STATE.next_conn()
        self.arrival = None
        if not self.server.tls:
            self.arrival = ArrivalReader(self.connection)
            self.rfile = io.BufferedReader(self.arrival)

    def handle_one_request(self):
        if self.arrival:
            self.arrival.mark()
        super().handle_one_request()

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n).decode("utf-8", "replace") if n else ""

    def base(self):
        # behind a TLS front (spec/support/h2.lua) links keep the front's scheme
        scheme = self.headers.get("X-Forwarded-Proto") or ("https" if self.server.tls else "http")
        return "%s://%s/v1" % (scheme, self.headers.get("Host", "127.0.0.1"))

    def handle_any(self, method):
        self.entry = None
        url = urllib.parse.urlsplit(self.path)
        path, raw_query = url.path, url.query
        body = self.read_body()
        if path.startswith("/_control/"):
            return self.control(path, body)
        entry = {
            "method": method, "path": path, "query": raw_query, "body": body,
            "authorization": self.headers.get("Authorization"),
            "api_key": self.headers.get("X-Api-Key"),
            "user_agent": self.headers.get("User-Agent"),
            "accept_language": self.headers.get("Accept-Language"),
            "conn": self.conn_id, "tls": self.server.tls, "time": time.time(),
            "arrived": (self.arrival and self.arrival.first) or time.time(),
            "target": self.path, "host": self.headers.get("Host"),
            "accept_encoding": self.headers.get("Accept-Encoding"),
            "if_none_match": self.headers.get("If-None-Match"),
            "if_modified_since": self.headers.get("If-Modified-Since"),
        }
        self.entry = entry
        with STATE.lock:
            STATE.log.append(entry)
        fault = STATE.take_fault(method, path, raw_query)
        try:
            answer = self.answer(method, path, raw_query, body)
        except Answer as a:
            answer = a
        entry["status"] = answer.status
        if fault and "status" in fault:
            entry["fault_status"] = fault["status"]  # what went out instead
        try:
            if fault:
                if fault.get("barrier"):
                    # barrier = n: the answer waits for n such requests in flight
                    STATE.meet(fault.get("path", ""), int(fault["barrier"]),
                               float(fault.get("barrier_seconds", 5)), entry)
                return self.faulty(fault, answer)
            if answer.status == 200 and method == "GET" and path.startswith("/v1/"):
                return self.validated(entry, answer)
            self.send(answer.status, json.dumps(answer.body).encode(), answer.headers)
        finally:
            entry["answered"] = time.time()  # the answer has left (or the connection broke)

    def validated(self, entry, answer):
        """A catalog answer with its validators (config "etags"): the ETag
        is a digest of the body; a request whose If-None-Match names it (or,
        without If-None-Match, whose If-Modified-Since is not older than
        Last-Modified) gets 304 and no body."""
        data = json.dumps(answer.body).encode()
        with STATE.lock:
            on = STATE.config.get("etags", True)
        if not on:
            return self.send(answer.status, data, answer.headers)
        tag = '"%s"' % hashlib.sha256(data).hexdigest()[:24]
        headers = dict(answer.headers)
        headers["ETag"] = tag
        headers["Last-Modified"] = LAST_MODIFIED
        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        if inm is not None:
            fresh = tag in [t.strip() for t in inm.split(",")] or inm.strip() == "*"
        else:
            try:
                fresh = parsedate_to_datetime(ims) >= parsedate_to_datetime(LAST_MODIFIED)
            except (TypeError, ValueError):
                fresh = False
        if not fresh:
            return self.send(answer.status, data, headers)
        entry["status"] = 304
        return self.send(304, b"", headers)

    def answer(self, method, path, raw_query, body):
        if path == "/api/token":
            if method != "POST":
                raise Answer(405, {"error": "method_not_allowed"})
            return self.token(body)
        if not path.startswith("/v1/"):
            raise error(404, "error_404_resource_not_found.json")
        if method != "GET":
            raise spotify_error(405, "Method not allowed")
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            raise error(401, "error_401_no_token.json")
        state = STATE.token_state(auth[len("Bearer "):])
        if state == "invalid":
            raise error(401, "error_401_invalid_token.json")
        if state == "expired":
            raise error(401, "error_401_token_expired.json")
        if path == "/v1/me":
            # The token's own user (each token one user), private as Spotify sends it.
            return Answer(200, me(auth[len("Bearer "):]), {"Cache-Control": "private, max-age=0"})
        query = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
        return Answer(200, route_catalog(self.base(), path, query))

    def token(self, body):
        form = urllib.parse.parse_qs(body)
        client_id = form.get("client_id", [None])[0]
        secret = form.get("client_secret", [None])[0]
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except Exception:
                raise error(400, "token_error_invalid_client.json")
        if form.get("grant_type", [None])[0] != "client_credentials":
            raise error(400, "token_error_unsupported_grant_type.json")
        creds = STATE.config.get("credentials", {})
        if client_id not in creds:
            raise error(400, "token_error_invalid_client.json")
        if creds[client_id] != secret:
            raise error(400, "token_error_invalid_client_secret.json")
        token, expires_in = STATE.issue_token()
        return Answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": expires_in})

    def control(self, path, body):
        if path == "/_control/health":
            return self.send(200, b'{"ok":true}')
        if path == "/_control/stop":
            self.send(200, b'{"ok":true}')
            return STOP.set()
        if path == "/_control/reset":
            STATE.reset()
            return self.send(200, b'{"ok":true}')
        if path == "/_control/config":
            STATE.configure(json.loads(body or "{}"))
            return self.send(200, b'{"ok":true}')
        if path == "/_control/log":
            with STATE.lock:
                data = json.dumps(STATE.log).encode()
            return self.send(200, data)
        return self.send(404, b'{"error":"no such control"}')

    def wants_gzip(self):
        with STATE.lock:
            on = STATE.config.get("gzip")
        return on and "gzip" in (self.headers.get("Accept-Encoding") or "")

    def send(self, status, data, headers=None, ctype="application/json; charset=utf-8", chunked=False):
        headers = dict(headers or {})
        if data and self.entry is not None and "Content-Encoding" not in headers and self.wants_gzip():
            data = gzip_bytes(data)
            headers["Content-Encoding"] = "gzip"
        if self.entry is not None:
            # Body bytes as they went out, after any gzip: bytes on the wire.
            self.entry["sent"] = len(data)
            self.entry["content_encoding"] = headers.get("Content-Encoding")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(data), 1000):
                piece = data[i:i + 1000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        self.wfile.flush()

    def drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def faulty(self, fault, answer):
        """Answers as the fault says: another status, a delay, a broken body."""
        # Headers and body go out in two writes: without this, Nagle holds the
        # body until the client's delayed ACK, 40 ms per answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if fault.get("action") == "random":
            # Soak runs: a fault drawn from fault["choices"] with probability
            # fault["rate"], else the normal answer.
            import random
            if random.random() >= float(fault.get("rate", 0.1)):
                return self.send(answer.status, json.dumps(answer.body).encode(), answer.headers)
            fault = dict(random.choice(fault["choices"]))
        if fault.get("delay"):
            time.sleep(float(fault["delay"]))
        status = fault.get("status", answer.status)
        headers = dict(answer.headers)
        headers.update(fault.get("headers") or {})
        if fault.get("reason"):
            # Spotify's error object with error.reason, e.g. a spent quota:
            # {"status": 429, "reason": "QUOTA_EXCEEDED", "headers": {}}
            body = fixture(fault.get("fixture", "error_429_rate_limited.json"))
            body["error"]["status"] = status
            body["error"]["reason"] = fault["reason"]
            data = json.dumps(body).encode()
        elif "fixture" in fault:
            data = json.dumps(fixture(fault["fixture"])).encode()
        elif "body" in fault:
            data = fault["body"].encode()
        elif "status" in fault and fault["status"] != answer.status:
            data = json.dumps({"error": {"status": status, "message": "fault %d" % status}}).encode()
        else:
            data = json.dumps(answer.body).encode()
        action = fault.get("action")
        if action is None:
            return self.send(status, data, headers)
        if action == "drop":
            return self.drop()
        if action in ("truncate", "drop_mid_body"):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            return self.drop()
        if action == "bad_json":
            return self.send(status, b'{"id": "4iV5W9uYEdYUVa79Axb7Rh", "name": ', headers)
        if action == "html":
            return self.send(status, b"<html><body><h1>502 Bad Gateway</h1></body></html>", headers,
                             ctype="text/html")
        if action == "empty":
            return self.send(status, b"", headers)
        if action == "wrong_ctype":
            return self.send(status, data, headers, ctype="text/plain")
        if action == "chunked":
            return self.send(status, data, headers, chunked=True)
        if action == "gzip_bomb":
            # `size` zero bytes gzipped (a few KB on the wire), whatever was asked.
            headers["Content-Encoding"] = "gzip"
            return self.send(status, gzip_zeros(int(fault.get("size", 64 << 20))), headers)
        if action == "gzip_truncated":
            # The gzip of the answer cut in half, with a Content-Length that fits the cut.
            headers["Content-Encoding"] = "gzip"
            packed = gzip_bytes(data)
            return self.send(status, packed[: len(packed) // 2], headers)
        if action == "encoding":
            # The answer as is, labelled with another Content-Encoding (fault["encoding"]).
            headers["Content-Encoding"] = fault.get("encoding", "br")
            return self.send(status, data, headers)
        if action == "drop_mid_chunks":
            # No Content-Length: the client learns of the loss only from the
            # missing last chunk.
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            piece = data[: len(data) // 2]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
            return self.drop()
        if action == "raw":
            # A hostile answer as given: `head`, then `fill` written `count`
            # times (`interval` s apart), `tail`, then `hold` s before closing.
            self.close_connection = True
            try:
                self.wfile.write(fault.get("head", "").encode("latin-1"))
                fill = fault.get("fill", "").encode("latin-1")
                for _ in range(int(fault.get("count", 0))):
                    self.wfile.write(fill)
                    self.wfile.flush()
                    time.sleep(float(fault.get("interval", 0)))
                self.wfile.write(fault.get("tail", "").encode("latin-1"))
                self.wfile.flush()
                time.sleep(float(fault.get("hold", 0)))
            except OSError:
                pass
            return self.drop()
        if action == "slow_headers":
            time.sleep(float(fault.get("seconds", 1)))
            return self.send(status, data, headers)
        if action == "slow_body":
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            step = max(1, len(data) // 10)
            for i in range(0, len(data), step):
                self.wfile.write(data[i:i + step])
                self.wfile.flush()
                time.sleep(float(fault.get("seconds", 1)) / 10)
            return None
        return self.send(500, b'{"error":{"status":500,"message":"unknown fault action"}}')


def gzip_bytes(data):
    z = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return z.compress(data) + z.flush()


def gzip_zeros(size):
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    step, parts = bytes(1 << 20), []
    for i in range(0, size, len(step)):
        parts.append(z.compress(step[: min(len(step), size - i)]))
    parts.append(z.flush())
    return b"".join(parts)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, tls_context=None, port=0):
        super().__init__(("127.0.0.1", port), Handler)
        self.tls = tls_context is not None
        if tls_context:
            self.socket = tls_context.wrap_socket(self.socket, server_side=True,
                                                  do_handshake_on_connect=False)

    def handle_error(self, request, client_address):
        pass  # clients that drop mid-request are part of the tests


def main():
    ap = argparse.ArgumentParser(
        description="A fake Spotify Web API on 127.0.0.1 for trying lua-spotify without an "
        "account and for its specs: canned catalog answers, a token endpoint that takes "
        "client ID test-id with secret test-secret, and fault injection. Prints the "
        "port(s) it listens on; the API is at http://127.0.0.1:PORT/v1 and the token "
        "endpoint at http://127.0.0.1:PORT/api/token. It stops when the process that "
        "started it exits (`make fake` prints the settings to export).")
    ap.add_argument("--port-file", metavar="PATH",
                    help="also write the port(s) to PATH (written whole, then renamed into place)")
    ap.add_argument("--tls-cert", metavar="PEM",
                    help="certificate for a second, TLS listener (needs --tls-key)")
    ap.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    ap.add_argument("--demo", action="store_true",
                    help="the answers `make demo` shows: varied tracks, totals that match "
                    "what the pages list (the specs use the default answers)")
    # the ports of a fake that was stopped: a restart takes them again
    ap.add_argument("--port", type=int, default=0,
                    help="port of the plain HTTP listener (default 0: any free port)")
    ap.add_argument("--tls-port", type=int, default=0,
                    help="port of the TLS listener (default 0: any free port)")
    args = ap.parse_args()
    if args.demo:
        DEFAULT_CONFIG["demo"] = True
        STATE.reset()
    servers = [Server(port=args.port)]
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        servers.append(Server(ctx, args.tls_port))
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    ports = " ".join(str(s.server_address[1]) for s in servers)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(ports + "\n")
        os.rename(args.port_file + ".tmp", args.port_file)
    print(ports, flush=True)
    # Live as long as the test run that started us, and not a moment longer.
    parent = os.getppid()
    while os.getppid() == parent and not STOP.wait(0.2):
        pass

if __name__ == "__main__":
    main()
