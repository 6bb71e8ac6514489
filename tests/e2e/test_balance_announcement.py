"""The balance said on the callback, end to end on the simulator: the account's currency, not
mod_say's dollars, and a balance below zero (after a correction) said rather than crashing the
flow. On SQLite and PostgreSQL, over real sockets.
"""

from __future__ import annotations

from platform_helpers import ANI_ACCESS

from esl_callback import accounts
from esl_callback.callback import billing

CALLER = "15550001001"


def said_on_leg_a(p, number: str) -> list[tuple[str, str]]:
    """(application, data) of every say and playback run on the callback leg to `number`."""
    channel = f"loopback/{number}-a"
    return [
        (app, data)
        for name, app, data in p.observer.executed
        if name == channel and app in ("say", "playback")
    ]


def test_a_balance_corrected_below_zero_is_announced_as_minus_euros(platform) -> None:
    alice = accounts.create_account("alice", default_callback_number=CALLER)
    billing.add_payment(alice, "10", "voucher 1")
    accounts.add_access_number(ANI_ACCESS, "ani")
    phone = {"answer_after": 3, "hangup_after": 14}  # hangs up while asked for a destination
    p = platform({CALLER: phone})

    p.trigger(CALLER, ANI_ACCESS)
    p.wait_request(lambda r: r.state == "calling_source")
    billing.add_payment(alice, "-12.50", "correction", allow_negative=True)
    request = p.wait_request(timeout=40)
    p.wait_idle()

    heard = said_on_leg_a(p, CALLER)
    announcement = heard.index(("playback", "voicemail/vm-you_have.wav"))
    assert heard[announcement + 1 : announcement + 6] == [
        ("playback", "currency/negative.wav"),
        ("say", "en NUMBER pronounced 2"),
        ("playback", "currency/euro.wav"),
        ("say", "en NUMBER pronounced 50"),
        ("playback", "currency/cents.wav"),
    ]
    assert all("CURRENCY" not in data for _, data in heard)
    # The flow went on to ask for the destination; the caller hung up there.
    apps = p.observer.on_leg_a(CALLER)
    assert apps.index("play_and_get_digits") > apps.index("say")
    assert (request.state, request.failure_cause) == ("cancelled", "CALLER_HUNG_UP")
    assert billing.audit(alice).balanced
