"""The stateless baseline of benches/wrk_load.rs: a Flask equivalent of 8x8's sample IVR.

Answers the wrk/ workloads with the callflows phonetree answers for abc_restaurant (same JSON,
same prompts), keeping nothing: like 8x8's sample, it decides from the webhook alone. The bench's
event ids number a call's webhooks (`<session>-<n>`), so the n-th CALL_ACTION of a call gets the
n-th prompt (welcome, reservations, book a table, then hang up); a SESSION_SUMMARY is
acknowledged. Run by the bench as `gunicorn -w 2 -b 127.0.0.1:PORT flask_baseline:app` (from
benches/).
"""

from flask import Flask, jsonify, request

app = Flask(__name__)


def say_and_capture(text, tries):
    return {
        "action": "sayAndCapture",
        "params": {
            "promptMessage": text,
            "voiceProfile": "en-US-BenjaminRUS",
            "speed": 1,
            "minDigits": 1,
            "maxDigits": 1,
            "digitTimeout": 10000,
            "overallTimeout": 10000,
            "noOfTries": tries,
        },
    }


PROMPTS = [
    say_and_capture(
        "Welcome to ABC Restaurant, to book a table press 1, to speak to a representative "
        "press 2, to hear our restaurant hours press 3.",
        1,
    ),
    say_and_capture(
        "Press 1 to make a new reservation, press 2 to reschedule an existing reservation, "
        "press 3 to return to main menu.",
        2,
    ),
    say_and_capture(
        "Reserving a Table, Press 1 to reserve a table for today, Press 2 to reserve a table "
        "for tomorrow.",
        2,
    ),
]
HANGUP = {"action": "hangup"}


@app.post("/webhooks/vca")
def call_action():
    body = request.get_json(silent=True) or {}
    payload = body.get("payload") or {}
    if not payload.get("sessionId"):
        return jsonify({"error": "no sessionId"}), 400
    # The webhook's place in its call, from its event id (`<session>-<n>`, n from 1).
    _, _, n = str(payload.get("eventId", "")).rpartition("-")
    step = int(n) - 1 if n.isdigit() and int(n) > 0 else 0
    action = PROMPTS[step] if step < len(PROMPTS) else HANGUP
    return jsonify({"callflow": [action]})


@app.post("/webhooks/vss")
def session_summary():
    request.get_json(silent=True)
    return jsonify({"status": "recorded"})


@app.get("/readyz")
def ready():
    return "ready"
