"""What a user would write instead of esl-callback: a two-stage callback in plain greenswitch.

No database, no billing, no retries: the trigger call is refused and leg A is originated to the
outbound socket; there the caller keys a PIN (any) and a destination; leg B is originated with
&park() and bridged when its CHANNEL_ANSWER arrives. The benchmark runs it on the same simulator
and load as esl-callback, for comparison.

    python bench/plain_greenswitch.py SWITCH_PORT PASSWORD OUTBOUND_PORT GATEWAY ACCESS_NUMBER
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402
import uuid  # noqa: E402

from gevent.event import Event  # noqa: E402
from greenswitch.esl import InboundESL, OutboundESLServer  # noqa: E402

SWITCH_PORT, PASSWORD, OUTBOUND_PORT, GATEWAY, ACCESS = sys.argv[1:6]
PROMPT = "ivr/ivr-please_enter_pin_followed_by_pound.wav"
INVALID = "ivr/ivr-that_was_an_invalid_entry.wav"
RINGBACK = "tone_stream://%(2000,4000,440,480);loops=-1"

switch = InboundESL("127.0.0.1", int(SWITCH_PORT), PASSWORD)
switch.connect()
switch.send("event plain CHANNEL_ANSWER")
waiting_b: dict[str, str] = {}  # leg B uuid -> leg A uuid


def on_answer(event):
    leg_a = waiting_b.pop(event.headers.get("Unique-ID"), None)
    if leg_a:
        switch.send(f"bgapi uuid_bridge {leg_a} {event.headers['Unique-ID']}")


switch.register_handle("CHANNEL_ANSWER", on_answer)


def originate(number, caller_id, app, leg_uuid=None):
    variables = f"origination_caller_id_number={caller_id}"
    if leg_uuid:
        variables += f",origination_uuid={leg_uuid}"
    switch.send(f"bgapi originate {{{variables}}}sofia/gateway/{GATEWAY}/{number} {app}")


class Callback:
    def __init__(self, session):
        self.session = session

    def run(self):
        s = self.session
        data = s.session_data
        caller = data.get("Caller-Caller-ID-Number")
        if data.get("Caller-Destination-Number") == ACCESS:  # the trigger: refuse, call back
            s.call_command("hangup", "USER_BUSY")
            originate(caller, ACCESS, f"&socket('127.0.0.1:{OUTBOUND_PORT} async full')")
            return
        s.myevents()
        s.linger()
        hung_up = Event()
        s.register_handle("CHANNEL_HANGUP", lambda event: hung_up.set())
        if not self.digits("callback_pin") or not (destination := self.digits("callback_dest")):
            s.hangup()
            return
        s.call_command("playback", RINGBACK)
        leg_b = str(uuid.uuid4())
        waiting_b[leg_b] = s.uuid
        originate(destination, data.get("Caller-Destination-Number"), "&park()", leg_b)
        hung_up.wait()

    def digits(self, variable):
        return self.session.play_and_get_digits(
            1, 20, 3, 8000, "#", PROMPT, INVALID, variable, "\\d+", 3000, response_timeout=60
        )


server = OutboundESLServer("127.0.0.1", int(OUTBOUND_PORT), Callback, max_connections=100_000)
server.listen()
