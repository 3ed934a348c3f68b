-- The API reference (doc/spotify.luadoc, `make doc`): every public function
-- and method is in it, each one that can fail documents both return forms
-- (the value, or nil and the error), and ldoc builds it without a warning.
local spotify = require "spotify"
local files = require "spec.support.files"

local SOURCE = "doc/spotify.luadoc"

local function sh(cmd)
  local out = files.read_command("(" .. cmd .. ") 2>&1; echo \"exit:$?\"")
  local body, code = out:match "^(.-)\n?exit:(%d+)$"
  return body, tonumber(code)
end

--- name -> the text of its doc comment, from "@function name" blocks.
local function documented()
  local text = assert(files.read_file(SOURCE))
  local out = {}
  for block in (text .. "\n\n"):gmatch "%-%-%-.-\n\n" do
    local name = block:match "@function ([%w_.:]+)"
    if name then out[name] = block end
  end
  return out
end

local function public_names(object)
  local out = {}
  for name, v in pairs(getmetatable(object).__index) do
    if type(v) == "function" and not name:match "^__" then out[#out + 1] = name end
  end
  table.sort(out)
  return out
end

describe("API reference", function()
  local docs = documented()
  local client = spotify.client { client_id = "id", client_secret = "secret", api_base = "http://127.0.0.1:9/v1",
    token_url = "http://127.0.0.1:9/api/token" }
  local request = client:start("markets")
  request:cancel()
  client:close()

  it("documents every method of a client and of a started request, and nothing else", function()
    local names = {}
    for _, name in ipairs(public_names(client)) do names["client:" .. name] = true end
    for _, name in ipairs(public_names(request)) do names["request:" .. name] = true end
    for name in pairs(names) do
      assert.truthy(docs[name], name .. " is missing from " .. SOURCE)
    end
    for name in pairs(docs) do
      if name:match "^client:" or name:match "^request:" then
        assert.truthy(names[name], SOURCE .. " documents " .. name .. ", which does not exist")
      end
    end
  end)

  it("annotates every method of a client and of a started request for lua-language-server", function()
    local text = assert(files.read_file "lua/spotify/types.lua")
    assert.matches("^%-%-%-@meta spotify\n", text)
    local annotated = {}
    for class, name in text:gmatch "\nfunction (%a+):([%w_]+)%(" do annotated[class .. ":" .. name] = true end
    for _, name in ipairs(public_names(client)) do
      assert.truthy(annotated["Client:" .. name], "client:" .. name .. " has no annotation in lua/spotify/types.lua")
    end
    for _, name in ipairs(public_names(request)) do
      assert.truthy(annotated["Request:" .. name], "request:" .. name .. " has no annotation in lua/spotify/types.lua")
    end
    for name in pairs(annotated) do
      local class, method = name:match "^(%a+):(.*)$"
      local object = class == "Client" and client or request
      assert.truthy(getmetatable(object).__index[method], "lua/spotify/types.lua annotates " .. name
        .. ", which does not exist")
    end
    for name in pairs(require("spotify.options").checks) do
      assert.truthy(text:find("\n---@field " .. name .. " ", 1, true), "option " .. name .. " is not annotated")
    end
    -- a meta file: loading it changes nothing and touches no real module
    assert.is_nil(package.loaded["spotify.types"])
  end)

  it("documents the module's functions and caches", function()
    for name, v in pairs(spotify) do
      if type(v) == "function" then assert.truthy(docs[name], name .. " is missing from " .. SOURCE) end
    end
    for name in pairs(spotify.cache) do
      assert.truthy(docs["cache." .. name], "cache." .. name .. " is missing from " .. SOURCE)
    end
    local text = files.read_file(SOURCE)
    assert.matches("@field VERSION", text)
    assert.matches("@field null", text)
  end)

  it("names every counter of client:stats", function()
    for name in pairs(client:stats()) do
      assert.truthy(docs["client:stats"]:find("`" .. name .. "`", 1, true), "client:stats does not name " .. name)
    end
  end)

  it("has a row in the options table for every option the constructor takes", function()
    local text = files.read_file(SOURCE)
    local options = require "spotify.options"
    for name in pairs(options.checks) do
      assert.truthy(text:find("<tr><td>`" .. name .. "`</td>", 1, true),
        "option " .. name .. " has no row in " .. SOURCE)
    end
  end)

  it("names the error kinds of every method that can return nil, err", function()
    for name, block in pairs(docs) do
      local returns = block:match "@treturn%[2%] error ([^\n]*)"
      if returns then
        assert.truthy(returns:find("`%l[%l_]+`") or returns:find "request kind",
          name .. " does not name its error kinds")
      end
    end
    local text = files.read_file(SOURCE)
    for _, field in ipairs { "kind", "status", "message", "retry_after", "method", "url" } do
      assert.matches("@field " .. field .. "\n", text)
    end
  end)

  it("gives both return forms of every method that can return nil, err", function()
    -- A closed client answers every API method with nil, err: those methods
    -- must document the value and the nil, err form.
    local failing = 0
    for _, name in ipairs(public_names(client)) do
      local ok, value, err = pcall(client[name], client, "4iV5W9uYEdYUVa79Axb7Rh", {})
      local block = docs["client:" .. name]
      if ok and value == nil and spotify.is_error(err) then
        failing = failing + 1
        assert.matches("@t?return%[1%]", block, nil, false, name .. ": no first return form")
        assert.matches("@return%[2%] nil\n", block, nil, false, name .. ": no nil return form")
        assert.matches("@treturn%[2%] error ", block, nil, false, name .. ": no error return form")
      else
        assert.not_matches("%[2%]", block, nil, false, name .. " never returns nil, err")
      end
    end
    assert.is_true(failing >= 35, failing .. " methods return nil, err on a closed client")
    assert.matches("@return%[2%] nil\n", docs["request:result"])
  end)

  it("builds with ldoc, with no warning, listing every method", function()
    local out, code = sh "make --no-print-directory doc"
    assert.equal(0, code, out)
    assert.not_matches("[Ww]arning", out)
    local html = assert(files.read_file "build/doc/index.html")
    for name in pairs(docs) do
      assert.truthy(html:find(name, 1, true), name .. " is not in build/doc/index.html")
    end
    -- names with underscores come out whole: markdown reads a_b_c as a, an
    -- emphasized b, and c unless the name is a code span
    for name in pairs(require("spotify.options").checks) do
      assert.truthy(html:find("<code>" .. name .. "</code>", 1, true), "option " .. name .. " is garbled in the HTML")
    end
    local variables = 0
    for name in files.read_file(SOURCE):gmatch "SPOTIFY_[%u_]+" do
      variables = variables + 1
      assert.truthy(html:find(name, 1, true), name .. " is garbled in the HTML")
    end
    assert.is_true(variables >= 4)
    local garbled = html:match "[%w_]<em>[%w_]+</em>[%w_]*" or html:match "[%w_]*<em>[%w_]+</em>[%w_]"
    assert.is_nil(garbled, "a name lost its underscores to emphasis: " .. tostring(garbled))
  end)

  it("fails the build on an ldoc warning", function()
    local dir = files.read_command "mktemp -d /tmp/lua-spotify-doc.XXXXXX"
    files.write_file(dir .. "/bad.luadoc", "--- A module.\n-- @module bad\n\n--- A function.\n"
      .. "-- @function f\n-- @treturn[1] table x\n-- @frobnicate y\n")
    files.write_file(dir .. "/bad.ld", ("file = { %q }\ndir = %q\n"):format(dir .. "/bad.luadoc", dir .. "/out"))
    local out, code = sh("make --no-print-directory doc LDOC_CONFIG=" .. dir .. "/bad.ld")
    files.run("rm -rf " .. dir)
    assert.is_true(code ~= 0, out)
    assert.matches("frobnicate", out)
  end)
end)

describe("README", function()
  local readme = assert(files.read_file "README.md")

  --- GitHub's anchor for a heading (letters beyond ASCII are kept).
  local function anchor(heading)
    return (heading:lower():gsub("[^%w%- _\128-\255]", ""):gsub(" ", "-"))
  end

  --- The guides: README.md and doc/*.md.
  local function guides()
    local out = { "README.md" }
    for name in files.read_command("ls doc"):gmatch "[^\n]+" do
      if name:match "%.md$" then out[#out + 1] = "doc/" .. name end
    end
    return out
  end

  --- The anchors of a Markdown file's headings, outside code blocks.
  local function anchors(text)
    local out, fenced = {}, false
    for line in (text .. "\n"):gmatch "([^\n]*)\n" do
      if line:match "^```" then fenced = not fenced end
      local heading = not fenced and line:match "^#+ (.+)$"
      if heading then out[anchor(heading)] = true end
    end
    return out
  end

  it("is a guide of at most 400 lines, the depth in doc/", function()
    local lines = select(2, readme:gsub("\n", "\n"))
    assert.is_true(lines <= 400, "README.md has " .. lines .. " lines")
  end)

  it("links every page of doc/, and every link between the guides reaches its file and heading", function()
    local list = guides()
    assert.is_true(#list >= 9, #list .. " guides")
    for i = 2, #list do
      assert.truthy(readme:find("](" .. list[i] .. ")", 1, true), "README.md does not link " .. list[i])
    end
    local checked = 0
    for _, page in ipairs(list) do
      local text = assert(files.read_file(page))
      local dir = page:match "^(.*)/[^/]*$"
      text = text:gsub("\n```.-\n```", "") -- no links inside code blocks
      for target in text:gmatch "%]%(([^)%s]+)%)" do
        if not target:match "^%a+:" then
          local file, hash = target:match "^([^#]*)#?(.*)$"
          local path = file == "" and page or ((dir and dir .. "/" or "") .. file)
          path = path:gsub("[^/]+/%.%./", "")
          local body = files.read_file(path)
          assert.truthy(body, page .. " links " .. target .. ": no file " .. path)
          if hash ~= "" then
            assert.truthy(anchors(body)[hash], page .. " links " .. target .. ": no such heading in " .. path)
          end
          checked = checked + 1
        end
      end
    end
    assert.is_true(checked > 50, checked .. " links checked")
  end)

  it("has a table of contents listing every section, in order, with working links", function()
    local toc = readme:match "\n## Contents\n\n(.-)\n\n"
    assert.truthy(toc, "no ## Contents list")
    local sections = {}
    for heading in readme:gmatch "\n## ([^\n]+)" do
      if heading ~= "Contents" then sections[#sections + 1] = heading end
    end
    local listed = {}
    for title, link in toc:gmatch "%- %[([^%]]+)%]%(#([^)]+)%)" do listed[#listed + 1] = { title, link } end
    assert.equal(#sections, #listed, "sections: " .. table.concat(sections, ", "))
    for i, heading in ipairs(sections) do
      assert.equal(heading, listed[i][1])
      assert.equal(anchor(heading), listed[i][2])
    end
  end)
end)
