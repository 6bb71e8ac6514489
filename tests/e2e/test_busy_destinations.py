"""A destination that refuses the call is busy to the caller, however the switch reports it.

A SIP 486 from the far end reaches FreeSWITCH as USER_BUSY over a sofia gateway
(sofia_glue_sip_cause_to_freeswitch) but as NORMAL_CLEARING over mod_loopback (the recorded
flow-b-busy): the caller hears the busy prompt and the status says busy either way. On SQLite
and PostgreSQL, over real sockets.
"""

from __future__ import annotations

import pytest
from platform_helpers import ANI_ACCESS

from esl_callback import accounts
from esl_callback.callback import billing, status

CALLER = "15550001001"
REFUSES = "15550002002"  # answers nothing: the phone's switch refuses with SIP 486
FRIEND = "15550002001"
ROUTES = {
    "loopback": [{"prefix": "", "template": "loopback/{number}/phones"}],
    "sofia gateway": [
        {
            "prefix": "1555000200",
            "template": "sofia/gateway/{gateway}/{number}",
            "gateway": "carrier",
        },
        {"prefix": "", "template": "loopback/{number}/phones"},
    ],
}
CAUSE_ON_THE_SWITCH = {"loopback": "NORMAL_CLEARING", "sofia gateway": "USER_BUSY"}


@pytest.mark.parametrize("route", list(ROUTES))
def test_a_destination_refusing_with_486_is_busy_to_the_caller(platform, route: str) -> None:
    alice = accounts.create_account("alice", default_callback_number=CALLER)
    billing.add_payment(alice, "10", "voucher")
    accounts.add_access_number(ANI_ACCESS, "ani")
    caller = {"answer_after": 1, "keys": [{"after": 1, "digits": f"{REFUSES}#"}], "hangup_after": 8}
    p = platform(
        {CALLER: caller, REFUSES: {"respond": 486}, FRIEND: {"answer_after": 1}},
        routes=ROUTES[route],
        destination_attempts=1,
    )

    p.trigger(CALLER, ANI_ACCESS)
    request = p.wait_request(timeout=30)
    p.wait_idle()

    leg_b = p.legs(request.id)[1]
    assert leg_b.hangup_cause == CAUSE_ON_THE_SWITCH[route]
    assert "ivr/ivr-user_busy.wav" in p.observer.played(CALLER)
    snap = p.db.run(status.snapshot, request.id)
    assert snap["legs"][1]["status"] == "busy"
