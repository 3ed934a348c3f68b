-- Loaded by busted before every spec file (see .busted). Refuses to test a
-- spotify.core that does not come from this tree's build directory.
local build = os.getenv "SPOTIFY_BUILD"
if build then
  local path = build .. "/spotify/core.so"
  local f = io.open(path, "rb")
  if not f then error("spec/helper: " .. path .. " is missing; run make build") end
  f:close()
  package.cpath = build .. "/?.so;" .. package.cpath
  package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
  local loaded = package.loaded["spotify.core"]
  if loaded == nil then
    local loader = assert(package.loadlib(path, "luaopen_spotify_core"))
    package.preload["spotify.core"] = loader
  end
end
