-- New-call workload: every request is 8x8's CALL_ACTION for a brand-new session whose caller
-- pressed 1, with no CALL_RECEIVED before it. phonetree binds the call to abc_restaurant by the
-- destination number and, the call being inbound with no clientActionId to say which prompt the
-- key answers, starts it: every answer is the welcome prompt (main_menu). Each request creates
-- one stored session.
--
-- Works with any number of connections per thread: requests do not depend on each other.

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local template = '{"namespace":"VOICE","eventType":"CALL_ACTION","payload":{"eventId":"%s-1",'
  .. '"sessionId":"%s","callId":"c","subAccountId":"acct","callStatus":"DTMF_RECEIVED",'
  .. '"callDirection":"INBOUND","callType":"PSTN","source":"+6591178965",'
  .. '"destination":"+6568888888","dtmf":"1"}}'

local n = 0

function request()
  n = n + 1
  local session = session_id(id, n)
  return wrk.format("POST", "/webhooks/vca", json_headers, string.format(template, session, session))
end

function response(status, headers, body)
  count(status, has(body, "Welcome to ABC Restaurant"))
end
