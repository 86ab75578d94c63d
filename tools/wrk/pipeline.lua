-- SPDX-License-Identifier: MIT
-- Pipelining for wrk, as the TechEmpower plaintext test uses it: each write carries DEPTH
-- requests for the same path, and wrk counts every response.
--   wrk -t1 -c64 -d10s -s tools/wrk/pipeline.lua http://127.0.0.1:8080/plaintext -- 16
local depth = 16

function init(args)
  if args[1] ~= nil then
    depth = tonumber(args[1])
    if depth == nil or depth < 1 then
      error("pipeline depth must be a number >= 1, got " .. tostring(args[1]))
    end
  end
  local one = wrk.format(nil, wrk.path)
  local reqs = {}
  for i = 1, depth do
    reqs[i] = one
  end
  pipelined = table.concat(reqs)
end

function request()
  return pipelined
end
