-- SPDX-License-Identifier: MIT
-- wrk_check.lua: counts the responses that are wrong (status other than 200, or a body other
-- than the expected one, $WRK_EXPECT_BODY or "Hello, World!") on every wrk thread, and prints
-- "wrk_check: responses=N wrong=M" from done(). Each thread keeps its counters in its own Lua
-- state; done() runs in the main state and reads them through the thread handles from setup().

local expected = os.getenv("WRK_EXPECT_BODY") or "Hello, World!"
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   responses = 0
   wrong = 0
end

function response(status, headers, body)
   responses = responses + 1
   if status ~= 200 or body ~= expected then
      wrong = wrong + 1
   end
end

function done(summary, latency, requests)
   local total, bad = 0, 0
   for _, t in ipairs(threads) do
      total = total + t:get("responses")
      bad = bad + t:get("wrong")
   end
   io.write(string.format("wrk_check: responses=%d wrong=%d\n", total, bad))
end
