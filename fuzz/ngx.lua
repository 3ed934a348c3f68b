-- The nginx driver's response reader (lua/spotify/ngx.lua) on any bytes: a
-- client:get runs inside a stand-in for nginx whose cosockets answer every
-- connection with the input (status lines, headers, chunking, truncation),
-- handed over in pieces of the sizes the input picks, sometimes timing out.
-- Whatever comes: the reader never raises (drive() would report that as
-- "unreadable answer"), never asks for more than it may hold, always ends,
-- and the call answers a value or an error of a documented kind.
local core = core
local testing = core.testing()
testing.virtual_clock(true)

local KINDS = { network = true, timeout = true, decode = true, auth = true, forbidden = true, not_found = true,
  bad_request = true, rate_limited = true, server = true, invalid_argument = true }
local MAX_READ = 64 * 1024 -- what one receiveany may ask for (READ_SIZE)

local input, pos, cut, sent

-- One connection: the input from its start, in pieces of 1 to `cut` bytes.
local function new_socket()
  local at, reads = pos, 0
  local s = {}
  function s.settimeout() end
  function s.connect() return true end
  function s.getreusedtimes() return 0 end
  function s.setkeepalive() return true end
  function s.close() return true end
  function s.send(_, data)
    sent[#sent + 1] = data
    return #data
  end
  function s.receiveany(_, max)
    assert(type(max) == "number" and max >= 1 and max <= MAX_READ, "receiveany asked for " .. tostring(max))
    reads = reads + 1 -- each read takes a byte at least, or ends the connection
    assert(reads <= #input - pos + 2, "the reader never stops asking")
    if at > #input then return nil, "closed" end
    local size = 1 + (input:byte(at) % cut)
    if input:byte(at) == 0xFF then -- a pause longer than the timeout
      core.sleep(30)
      return nil, "timeout"
    end
    local piece = input:sub(at, math.min(at + size - 1, at + max - 1))
    at = at + #piece
    return piece
  end
  return s
end

ngx = { -- luacheck: ignore 111
  get_phase = function() return "content" end,
  sleep = function(s) core.sleep(s) end,
  socket = { tcp = new_socket },
}

local spotify = require "spotify"

-- Made once (a client is costly to make): one with a fixed token, one that
-- fetches its own (which keeps a token once an input gave it one).
local CLIENTS = {
  spotify.client { api_base = "http://api.invalid/v1", access_token = "tok", max_retries = 1, max_body = 4096,
    timeout = 5 },
  spotify.client { api_base = "http://api.invalid/v1", client_id = "id", client_secret = "secret",
    token_url = "http://accounts.invalid/api/token", max_retries = 1, max_body = 4096, timeout = 5 },
}

function check(data)
  if #data < 2 then return end
  cut = 1 + data:byte(1) % 64
  input, pos, sent = data, 3, {}
  local c = CLIENTS[1 + data:byte(2) % 2]
  local value, err = c:get "/tracks/4iV5W9uYEdYUVa79Axb7Rh"
  if value == nil then
    assert(spotify.is_error(err), "no value and no error")
    assert(KINDS[err.kind], "unknown kind " .. tostring(err.kind))
    assert(not tostring(err.message):find("unreadable answer", 1, true), "the reader raised: " .. tostring(err.message))
  end
  for _, request in ipairs(sent) do
    local head = request:match "^(.-\r\n)\r\n"
    assert(head, "a request without its blank line")
    assert(not head:find "[%z\1-\9\11\12\14-\31]", "a control character in the request head")
  end
end
