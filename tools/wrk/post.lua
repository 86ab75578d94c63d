-- SPDX-License-Identifier: MIT
-- POST with a body for wrk. The body is the first script argument, or the contents of the
-- file named by "@path", or a default; Content-Type from the second argument.
--   wrk -t1 -c64 -d10s -s tools/wrk/post.lua http://127.0.0.1:8080/echo -- @README.md text/plain
function init(args)
  local body = args[1] or "hello, coil"
  if body:sub(1, 1) == "@" then
    local f = assert(io.open(body:sub(2), "rb"))
    body = f:read("*a")
    f:close()
  end
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = args[2] or "application/octet-stream"
end
