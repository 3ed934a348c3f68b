--- How a call's exchanges are driven where it runs. Every driver runs the
-- same exchange machine of the C core; this file only picks one:
--   * a plain call blocks inside C (core.call: the whole exchange at once);
--   * several URLs at once go to the libcurl multi driver in one call
--     (core.gather), with `concurrency` in flight;
--   * a started request (client:start) submits and yields to client:poll;
--   * inside nginx, the Lua driver (spotify.ngx) runs over cosockets.
local core = require "spotify.core"
local tasks = require "spotify.tasks"

local call = core.call

local calls = {}

calls.in_nginx = type(rawget(_G, "ngx")) == "table" and type(ngx.get_phase) == "function"

local function nginx_driver() return require "spotify.ngx" end

--- GET one URL and decode it. `name`: the API method's (the response
-- cache's ttl), or nil. @return value | nil, err
function calls.get(self, env, url, name)
  if env.tasks and tasks.inside(env) then
    local values, errs = tasks.gather(self, env, { url }, name)
    return values[1], errs[1]
  end
  if calls.in_nginx then return nginx_driver().get(self, url, name) end
  return call(self, "GET", url, name)
end

--- GET every URL concurrently. @return values, errs (by index)
function calls.get_all(self, env, urls, name)
  if #urls == 1 then
    local v, e = calls.get(self, env, urls[1], name)
    return { v }, { e }
  end
  if calls.in_nginx and not (env.tasks and tasks.inside(env)) then
    return nginx_driver().get_all(self, urls, env.concurrency, name)
  end
  return tasks.gather(self, env, urls, name)
end

--- IDs of one kind (spec: see batch.lua) in their batch windows
-- (batch_window), where callers can be parked: started requests and nginx
-- light threads. A plain call has nothing to wait with and goes out alone.
-- @return one settled waiter per ID ({value | err | missing | single}), or nil
function calls.batch_lookup(self, env, spec, ids)
  if env.tasks and tasks.inside(env) then return tasks.batch_lookup(self, env, spec, ids, calls.get_all) end
  if calls.in_nginx then return nginx_driver().batch_lookup(self, env, spec, ids, calls.get_all) end
  return nil
end

--- client:access_token() where it runs. @return token, seconds_left | nil, err
function calls.access_token(self)
  if calls.in_nginx then return nginx_driver().access_token(self) end
  return core.access_token(self)
end

return calls
