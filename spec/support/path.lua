--- A PATH of symlinks for specs that play another machine: every program
-- of the current PATH except those hidden (apt-get, the interpreters ...),
-- plus links of one's own (`lua` -> lua5.1). No container, no root.
--
--   local dir = path.without(workdir .. "/bin", "apt-get|dpkg-query|lua*")
--   path.link(dir, "lua", "lua5.1")
--   ... "PATH=" .. dir .. " make demo"
local files = require "spec.support.files"

local path = {}

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- A fresh directory `dir` linking every program on PATH whose name does not
-- match the sh case pattern `hidden` (the first of a name on PATH wins).
function path.without(dir, hidden)
  local script = [[
set -e
rm -rf "$1" && mkdir -p "$1"
seen=
old_ifs=$IFS; IFS=:
for d in $PATH; do
  IFS=$old_ifs
  [ -d "$d" ] || continue
  for f in "$d"/*; do
    n=${f##*/}
    [ -f "$f" ] && [ -x "$f" ] || continue
    case "$n" in $2) continue ;; esac
    case " $seen " in *" $n "*) continue ;; esac
    seen="$seen $n"
    printf '%s\n' "$f"
  done
done > "$1.list"
xargs -d '\n' ln -s -t "$1" < "$1.list"
rm -f "$1.list"
]]
  -- the pattern is spliced into the script: case needs it unquoted
  script = script:gsub("%$2", (hidden:gsub("%%", "%%%%")))
  assert(files.run(("sh -c %s sh %s"):format(quote(script), quote(dir))), "spec/support/path: cannot make " .. dir)
  return dir
end

--- Link `name` in `dir` to the program `program` of the current PATH.
function path.link(dir, name, program)
  local target = files.read_command("command -v " .. quote(program))
  assert(target ~= "", "spec/support/path: no " .. program .. " on PATH")
  assert(files.run(("ln -sf %s %s"):format(quote(target), quote(dir .. "/" .. name))))
end

return path
