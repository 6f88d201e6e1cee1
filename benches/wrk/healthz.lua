-- The ceiling of the load generator and the HTTP stack: GET /healthz (no store, no engine),
-- answers counted through the same response() path as the webhook workloads.

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local req = wrk.format("GET", "/healthz")

function request()
  return req
end

function response(status, headers, body)
  count(status, true)
end
