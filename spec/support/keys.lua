--- The cache keys a client uses, as a spec reads them from a shared
-- cache: one namespace per kind; tokens and renewal locks under a SHA-256
-- of the credentials (client ID, secret, token URL, scopes, each ended by
-- a NUL), penalties and pacing under the budget key (default the client ID),
-- each name in braces (a Redis Cluster hash tag: a token and its lock, a
-- penalty and its pacing share a slot).
local core = require "spotify.core"
local testing = core.testing()

local keys = {}

local function digest(client_id, secret, token_url, scope)
  return testing.digest(table.concat({ client_id, secret, token_url, scope or "" }, "\0") .. "\0")
end

--- keys.token(client_id, secret, token_url[, scope]) -> the token entry's key
function keys.token(...) return "token:{" .. digest(...) .. "}" end

--- keys.lock(client_id, secret, token_url[, scope]) -> the renewal lock's key
function keys.lock(...) return "lock:{" .. digest(...) .. "}" end

--- keys.penalty(budget) -> the shared 429 penalty's key
function keys.penalty(budget) return "penalty:{" .. budget .. "}" end

--- keys.pace(budget) -> the base of the shared pacing's keys
function keys.pace(budget) return "pace:{" .. budget .. "}" end

--- keys.of(f[, opts]) -> token, lock, penalty keys of a client of the fake
-- made with fake.client_opts(f, opts)
function keys.of(f, opts)
  opts = opts or {}
  local id, secret = opts.client_id or "test-id", opts.client_secret or "test-secret"
  local url = opts.token_url or f.token_url
  local scope = opts.scopes and table.concat(opts.scopes, " ")
  return keys.token(id, secret, url, scope), keys.lock(id, secret, url, scope),
    keys.penalty(opts.budget_key or id)
end

return keys
