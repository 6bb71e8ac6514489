"""A FreeSWITCH 1.10 stand-in that speaks the real Event Socket protocol, with virtual phones.

It is checked byte for byte against recordings of a real FreeSWITCH 1.10.12 (tests/simulator/
test_sim_golden.py) and is never kinder than the real switch: same reply and error texts, same
events and header sets, same ordering quirks.

Command line::

    esl-callback sim [-c sim.yaml] [--listen HOST:PORT] [--password PW] [--speed F]
    esl-callback sim export-xml [-c sim.yaml] [-o dialplan.xml]

In tests::

    from esl_callback.simulator import Simulator
    from esl_callback.simulator.config import from_mapping

    sim = Simulator(from_mapping({...}), speed=20, listen=("127.0.0.1", 0)).start()
    sim.host, sim.port                      # inbound ESL, password ClueCon unless configured
    uuid = sim.place_call("15550001001", "18005550100", "access")   # a phone dials a DID
    sim.wait_for(uuid, lambda ch: ch.answered, timeout=5)
    sim.api("uuid_kill " + uuid)            # any API command, output as text
    sim.wait_gone(uuid)
    sim.receive_sms("15550001001", "18005550100", "BAL")   # an SMS arrives (MESSAGE events)
    sim.register_user("15550001001", answers_messages=False)   # a phone deaf to SIP MESSAGE
    sim.outbox                              # what the `chat` API sent
    sim.stop()

Configuration (YAML, every section optional; ``esl_callback/simulator/demo.yaml`` is the
built-in default)::

    esl: {listen: 127.0.0.1:8021, password: ClueCon, apply_inbound_acl: [127.0.0.0/8]}
    speed: 1.0                        # 10 = ten times faster, timestamps stay consistent
    switch: {hostname: vm, max_sessions: 1000, sessions_per_second: 30,
             event_queue_limit: 100000, event_loss_limit: 500,
             media_frame_ms: 20}      # ptime: queued sendmsg are taken between frames
    globals: {hold_music: local_stream://moh}          # $${name} variables
    sounds: {default_seconds: 2.0, files: {ivr/ivr-welcome.wav: 3.12}}
    users:                                             # user/1000, and where `chat` goes
      "1000": {registered: false}
      "1001": {registered: true, contact: "127.0.0.1:5070", answers_messages: true}
    chatplan:                                          # mod_sms: what an incoming SMS does
      public:                                          # (fire, stop, final; see chatplan.py)
        - {name: sms, field: to_user, expression: '^(18005550100)$', actions: [fire, final]}
    gateways: {carrier: {context: public}}             # sofia/gateway/carrier/NUMBER
    dialplan:                                          # context -> extensions, first match wins
      access:
        - {name: trigger, expression: '^(1800555\\d{4})$',
           actions: ['socket 127.0.0.1:8084 async full']}
    phones:                                            # virtual phones: extensions in `context`
      context: phones
      lines:
        "15550001001": {answer_after: 1, keys: [{after: 1.5, digits: "1234#"}]}
        "15550002004": {busy: true}

Phone shorthands (each expands to real applications, see dialplan.phone_actions): ``actions``,
``busy``, ``unreachable``, ``respond``, ``no_answer``, ``ring``, ``early_media``,
``answer_after``, ``keys``, ``play``, ``hangup_after``, ``hangup_cause``.
"""

from esl_callback.simulator.config import SimConfig, load
from esl_callback.simulator.core import Simulator

__all__ = ["SimConfig", "Simulator", "load"]
