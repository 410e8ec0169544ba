-- wrk script for `make bench` S4/S8p: every write carries PIPELINE (default 16) requests for the
-- URL wrk was given (wrk counts the requests in it and expects that many responses per write).
-- The done() hook comes from report.lua beside this file.

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local depth = tonumber(os.getenv("PIPELINE") or "16")
local req

init = function(args)
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format(nil, nil)
  end
  req = table.concat(r)
end

request = function()
  return req
end
