-- `make gateway` as a user runs it: nginx with examples/gateway on
-- loopback, against the bundled fake unless SPOTIFY_CLIENT_ID/SECRET are
-- set, and the address to point a client at printed.
local spotify = require "spotify"
local fake = require "spec.support.fake"
local files = require "spec.support.files"
local gateway = require "spec.support.gateway"

local ID = "4iV5W9uYEdYUVa79Axb7Rh"

describe("make gateway", function()
  it("serves the bundled fake when no credentials are set, and says where to point a client", function()
    local run = gateway.make {}
    finally(function() gateway.unmake(run) end)
    local base = ("http://127.0.0.1:%d/v1"):format(run.port)
    local c = spotify.client { gateway = base }
    local track = c:track(ID)
    c:close()
    local out = run.output()
    assert.truthy(track, out)
    assert.equal(ID, track.id)
    assert.equal("string", type(track.name))
    assert.matches("no SPOTIFY_CLIENT_ID/SECRET: serving the bundled fake Spotify", out, 1, true)
    assert.matches('spotify.client{gateway = "' .. base .. '"}', out, 1, true)
    -- the production config, as shipped: 2 workers, both dicts, gzip, limit_req, /metrics
    local conf = assert(files.read_file(run.prefix .. "/conf/nginx.conf"))
    assert.matches("\nworker_processes 2;", conf)
    assert.matches("lua_shared_dict spotify_tokens", conf)
    assert.matches("lua_shared_dict spotify_answers", conf)
    assert.matches("\n  gzip on;", conf)
    assert.matches("limit_req zone=callers", conf)
    assert.matches("location = /metrics", conf)
  end)

  it("serves Spotify (here: a fake of the spec's own) with the credentials it is given", function()
    local f = fake.start {}
    local run = gateway.make { SPOTIFY_CLIENT_ID = "test-id", SPOTIFY_CLIENT_SECRET = "test-secret",
      SPOTIFY_API_BASE = f.api_base, SPOTIFY_TOKEN_URL = f.token_url }
    finally(function()
      gateway.unmake(run)
      f:stop()
    end)
    local c = spotify.client { gateway = ("http://127.0.0.1:%d/v1"):format(run.port) }
    local track, err = c:track(ID)
    c:close()
    assert.truthy(track, tostring(err) .. run.output())
    assert.not_matches("bundled fake", run.output(), 1, true)
    assert.equal(1, #f:log_for "/api/token")
    assert.is_true(#f:log_for "/v1/tracks" >= 1)
  end)
end)
