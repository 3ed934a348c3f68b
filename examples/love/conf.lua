--- LÖVE 11 settings of the example: a small window, no audio (a search
-- window needs none, and machines without a sound device stay quiet).
function love.conf(t)
  t.identity = "lua-spotify-example"
  t.version = "11.0"
  t.window.title = "lua-spotify: search while drawing"
  t.window.width = 640
  t.window.height = 480
  t.window.vsync = 1
  t.modules.audio = false
  t.modules.sound = false
  t.modules.joystick = false
  t.modules.physics = false
  t.modules.video = false
end
