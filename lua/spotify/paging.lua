--- Walking paging objects: client:items, client:pages, client:all,
-- client:next and client:previous.
local errors = require "spotify.errors"

local paging = {}

local function is_page(v)
  return type(v) == "table" and type(v.items) == "table"
end

-- The kind of item a page holds ("track"). Search pages may hold
-- spotify.null in places, so the first real item tells.
local function item_type(page)
  for _, item in ipairs(page.items) do
    if type(item) == "table" and type(item.type) == "string" then return item.type end
  end
  return nil
end

-- A `next` answer may wrap its page ({albums = page} for new releases). A
-- search for several types answers every type's page to each `next` link,
-- so the page wanted is the one holding the same kind of item as `prev`.
local function page_of(value, prev)
  if is_page(value) then return value end
  if type(value) ~= "table" then return nil end
  local kind = prev and item_type(prev)
  local found, count = nil, 0
  for key, v in pairs(value) do
    if is_page(v) then
      count = count + 1
      found = found or v
      if kind and key == kind .. "s" then return v end
    end
  end
  if count == 1 then return found end
  return nil
end

local function follow(ctx, self, env, url, prev)
  -- A gateway's client: Spotify's links name Spotify's address; the same
  -- path below the gateway is the same page (the client holds no token,
  -- and the link goes nowhere but the gateway).
  if env.gateway then
    local rest = url:match "^[hH][tT][tT][pP][sS]?://[^/?#]+/v1(/[^#]*)$"
    if rest then url = env.api_base .. rest end
  end
  -- The token goes only to our own API: never follow a link elsewhere.
  if url:sub(1, #env.api_base + 1) ~= env.api_base .. "/" then
    return nil, ctx.invalid("next link is not below api_base: " .. ctx.shown(url))
  end
  local target, query = ctx.url_for(env, url)
  if not target then
    return nil, ctx.invalid("next link holds a dot segment or a character not allowed in a URL: " .. ctx.shown(url))
  end
  url = target .. (query or "")
  local value, err = ctx.get(self, env, url)
  if value == nil then return nil, err end
  local page = page_of(value, prev)
  if not page then
    return nil, errors.new("decode", { message = "next link answered without a paging object",
      method = "GET", url = url })
  end
  return page
end

-- The first page handed in, or the error of the call that produced it.
local function first_page(first, err)
  if first == nil and err ~= nil then error(err, 3) end
  local page = page_of(first)
  if not page then
    error(errors.new("invalid_argument", { message = "expected a paging object (a table with items)" }), 3)
  end
  return page
end

--- Page by page. syntax: `for page in client:pages(first) do ... end`
-- Raises the error object when a later page fails.
local function pages(ctx, self, first, err)
  local page = first_page(first, err)
  local started = false
  return function()
    if not started then
      started = true
      return page
    end
    if type(page.next) ~= "string" then return nil end
    local env, cerr = ctx.env_of(self)
    if not env then error(cerr, 0) end
    local nxt, ferr = follow(ctx, self, env, page.next, page)
    if not nxt then error(ferr, 0) end
    page = nxt
    return page
  end
end

--- Every item of every page. syntax: `for item in client:items(first) do ... end`
local function items(ctx, self, first, err)
  local next_page = pages(ctx, self, first, err)
  local page, i = next_page(), 0
  return function()
    while page do
      i = i + 1
      local item = page.items[i]
      if item ~= nil then return item end
      page, i = next_page(), 0
    end
    return nil
  end
end

--- Every item in one array. syntax: `list, err = client:all(first, {max = N})`
-- Follows the links itself rather than through pages(): no pcall, so a
-- started request on Lua 5.1 can yield while a later page loads.
local function all(ctx, self, first, opts)
  if first == nil then
    -- client:all(client:x(...)) hands on the failed call's nil, err; with
    -- options after it, Lua keeps only the nil.
    if errors.is(opts) then return nil, opts end
    return nil, ctx.invalid("expected a paging object, got nil (did the call that made it fail?)")
  end
  local max = type(opts) == "table" and opts.max or math.huge
  if type(max) ~= "number" or max < 0 then
    return nil, ctx.invalid("opts.max must be a non-negative number")
  end
  local page = page_of(first)
  if not page then return nil, ctx.invalid("expected a paging object (a table with items)") end
  local list = {}
  while true do
    for _, item in ipairs(page.items) do
      if #list >= max then return list end
      list[#list + 1] = item
    end
    if #list >= max or type(page.next) ~= "string" then return list end
    local env, err = ctx.env_of(self)
    if not env then return nil, err end
    page, err = follow(ctx, self, env, page.next, page)
    if not page then return nil, err end
  end
end

-- The page at one end of `page` ("next" or "previous"): nil at that end.
local function neighbour(ctx, self, page, err, link)
  if page == nil then
    if errors.is(err) then return nil, err end -- client:next(client:x(...)) hands a failure on
    return nil, ctx.invalid("expected a paging object, got nil")
  end
  local p = page_of(page)
  if not p then return nil, ctx.invalid("expected a paging object (a table with items)") end
  if type(p[link]) ~= "string" then return nil end
  local env, eerr = ctx.env_of(self)
  if not env then return nil, eerr end
  return follow(ctx, self, env, p[link], p)
end

function paging.install(methods, ctx)
  --- The next page, or nil at the last one. syntax: `page, err = client:next(page)`
  methods.next = function(self, page, err) return neighbour(ctx, self, page, err, "next") end
  --- The previous page, or nil at the first one. syntax: `page, err = client:previous(page)`
  methods.previous = function(self, page, err) return neighbour(ctx, self, page, err, "previous") end
  methods.pages = function(self, first, err) return pages(ctx, self, first, err) end
  methods.items = function(self, first, err) return items(ctx, self, first, err) end
  methods.all = function(self, first, opts) return all(ctx, self, first, opts) end
end

return paging
