-- SPDX-License-Identifier: MIT
-- perf/db's request lists for wrk: the file named by the first script argument (written by
-- perf/db.d/workload.py make) returns a table of {method, path[, JSON body]}; they are sent in
-- turn, wrapping around, each request formatted once up front.
--   wrk -t1 -c64 -d5s -s perf/db.d/requests.lua http://127.0.0.1:8080 -- /tmp/x/crud.lua
local reqs, n, i = {}, 0, 0

function init(args)
  local list = assert(args[1], "requests.lua: give the request list file as the first argument")
  for _, r in ipairs(dofile(list)) do
    local headers = nil
    if r[3] ~= nil then
      headers = { ["Content-Type"] = "application/json" }
    end
    n = n + 1
    reqs[n] = wrk.format(r[1], r[2], headers, r[3])
  end
  assert(n > 0, "requests.lua: " .. list .. " holds no request")
end

function request()
  i = i % n + 1
  return reqs[i]
end
