-- spotify.core holds what the module runs on; the functions only specs and
-- fuzz targets call are in core.testing(), which the module never calls.
local core = require "spotify.core"

local TEST_ONLY = {
  "backoff", "basic_auth", "classify", "digest", "error_message", "file_read", "parse_retry_after",
  "parse_token", "time", "urlencode", "virtual_clock", "virtual_reset", "virtual_waits",
}

describe("spotify.core.testing", function()
  it("holds the test-only functions, which spotify.core does not", function()
    local testing = core.testing()
    for _, name in ipairs(TEST_ONLY) do
      assert.is_nil(core[name], name)
      assert.equal("function", type(testing[name]), name)
    end
    assert.equal(testing, core.testing())
  end)

  it("is never called by the module's Lua", function()
    for file in io.popen("find lua -name '*.lua'"):lines() do
      local text = assert(io.open(file)):read "*a"
      assert.is_nil(text:find("testing()", 1, true), file)
    end
  end)
end)
