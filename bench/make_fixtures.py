"""Builds the bench's static answers from the spec fixtures, laid out the way
Spotify lays out its JSON (" : " between key and value, one member a line):

  track.json     one track, about 4.5 KB
  search.json    tracks, artists and albums, about 97 KB
  tracks50.json  {"tracks": [...]} with 50 tracks, the batch endpoint's answer
  token.json     the token endpoint's answer (nginx returns it inline)

usage: python3 make_fixtures.py FIXTURES_DIR OUT_DIR
"""
import json
import os
import string
import sys

SEARCH_TARGET = 97_000
ALPHABET = string.digits + string.ascii_letters


def spotify_layout(value):
    return json.dumps(value, indent=0, separators=(", ", " : "), ensure_ascii=False)


def bench_id(n):
    """A valid 22-character base-62 ID, different for every n."""
    digits = []
    for _ in range(22):
        n, r = divmod(n, 62)
        digits.append(ALPHABET[r])
    return "".join(reversed(digits))


def renamed_track(track, n):
    t = json.loads(json.dumps(track))
    t["id"] = bench_id(n)
    t["uri"] = "spotify:track:" + t["id"]
    t["href"] = "https://api.spotify.com/v1/tracks/" + t["id"]
    t["external_urls"] = {"spotify": "https://open.spotify.com/track/" + t["id"]}
    return t


def grow_search(search):
    """Repeat every type's items (cycling, renumbered) until the page is
    about SEARCH_TARGET bytes; `limit` follows the item count."""
    originals = {k: v["items"] for k, v in search.items()}
    count = 10
    while True:
        out = {}
        for kind, items in originals.items():
            page = dict(search[kind])
            page["items"] = [items[i % len(items)] for i in range(count)]
            page["limit"] = count
            out[kind] = page
        text = spotify_layout(out)
        if len(text.encode()) >= SEARCH_TARGET or count >= 50:
            return text
        count += 1


def main(fixtures, out):
    os.makedirs(out, exist_ok=True)
    load = lambda name: json.load(open(os.path.join(fixtures, name), encoding="utf-8"))
    track = load("track.json")
    files = {
        "track.json": spotify_layout(track),
        "search.json": grow_search(load("search_track_artist_album.json")),
        "tracks50.json": spotify_layout({"tracks": [renamed_track(track, i) for i in range(50)]}),
        "token.json": json.dumps(load("token.json"), separators=(",", ":")),
    }
    for name, text in files.items():
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write(text)
    ids = [bench_id(i) for i in range(1000)]
    with open(os.path.join(out, "ids.txt"), "w") as f:
        f.write("\n".join(ids) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
