-- Whole-call workload: calls through abc_restaurant one after another, each as 8x8 sends it:
--   CALL_ACTION callStatus CALL_RECEIVED   -> main_menu
--   CALL_ACTION DTMF_RECEIVED dtmf 1       -> reservations
--   CALL_ACTION DTMF_RECEIVED dtmf 1       -> book_table
--   SESSION_SUMMARY to /webhooks/vss       -> recorded
-- with a new eventId for every webhook and no clientActionId. A webhook is sent only after the
-- previous one of its call was answered.
--
-- wrk gives a script no connection, only a thread, so this needs ONE CONNECTION PER THREAD
-- (wrk -tN -cN): a thread's calls are then the calls of its one connection. A request made while
-- the thread's previous one is still unanswered (more connections than threads) is counted as
-- unexpected, once the thread has had an answer: wrk calls request() once more on thread 1 before
-- the run, to check the script, and throws that request away.

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local vca = '{"namespace":"VOICE","eventType":"CALL_ACTION","payload":{"eventId":"%s-%d",'
  .. '"sessionId":"%s","callId":"c","subAccountId":"acct","callStatus":"%s",'
  .. '"callDirection":"INBOUND","callType":"PSTN","source":"+6591178965",'
  .. '"destination":"+6568888888","dtmf":%s}}'

local vss = '{"namespace":"VOICE","eventType":"SESSION_SUMMARY","payload":{"sessionId":"%s",'
  .. '"sessionStatus":"COMPLETED","lastAction":"HANGUP","callCount":1}}'

-- What each step's answer must contain (prompt texts of machines/abc_restaurant.toml).
local expected = {
  [0] = "Welcome to ABC Restaurant",
  [1] = "Press 1 to make a new reservation",
  [2] = "Reserving a Table",
  [3] = '"recorded"',
}

local calls, step, session, waiting, answered = 0, 0, nil, false, 0

function request()
  if waiting and answered > 0 then
    unexpected = unexpected + 1
  end
  waiting = true
  if step == 0 then
    calls = calls + 1
    session = session_id(id, calls)
    return wrk.format("POST", "/webhooks/vca", json_headers,
      string.format(vca, session, 1, session, "CALL_RECEIVED", "null"))
  elseif step < 3 then
    return wrk.format("POST", "/webhooks/vca", json_headers,
      string.format(vca, session, step + 1, session, "DTMF_RECEIVED", '"1"'))
  else
    return wrk.format("POST", "/webhooks/vss", json_headers, string.format(vss, session))
  end
end

function response(status, headers, body)
  waiting = false
  answered = answered + 1
  count(status, has(body, expected[step]))
  step = (step + 1) % 4
end
