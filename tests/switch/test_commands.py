"""The command builder: exact FreeSWITCH strings, and nothing unsafe ever built."""

import pytest

from esl_callback.switch import commands
from esl_callback.switch.commands import UnsafeCommand

INJECTIONS = [
    "123&park()",
    "1}sofia/x",
    "1,user/2",
    "1|x",
    "1 2",
    "12\nexecute-app-name: hangup",
    "١٢٣",
    "1" * 200,
    "",
]


def test_originate_of_leg_a_hands_the_answered_leg_to_our_socket() -> None:
    command = commands.originate(
        commands.dial_string("sofia/gateway/{gateway}/{number}", "4930123456", "carrier1"),
        commands.socket_application("127.0.0.1:8084"),
        {
            "origination_uuid": "5b8a4c2e-0f1d-4a57-9a55-3d5e1c8f7a21",
            "origination_caller_id_name": "Callback service",
            "callback_request_id": 42,
            "ignore_early_media": True,
        },
    )
    assert command == (
        "originate {origination_uuid=5b8a4c2e-0f1d-4a57-9a55-3d5e1c8f7a21,"
        "origination_caller_id_name='Callback service',callback_request_id=42,"
        "ignore_early_media=true}sofia/gateway/carrier1/4930123456 "
        "&socket('127.0.0.1:8084 async full')"
    )


def test_socket_application_takes_one_address_as_mod_event_socket_does() -> None:
    """socket_function splits host and port at the last colon: a `|` list is no failover,
    it is an address that never connects."""
    with pytest.raises(UnsafeCommand, match="host:port"):
        commands.socket_application("10.0.0.1:8084|10.0.0.2:8084")


@pytest.mark.parametrize("number", INJECTIONS)
def test_no_unvalidated_number_reaches_a_dial_string(number: str) -> None:
    with pytest.raises(UnsafeCommand):
        commands.dial_string("loopback/{number}/phones", number)


@pytest.mark.parametrize("value", ["a,b", "x}y", "line\nbreak", "quote'd", "a=b", "{x}"])
def test_variable_values_outside_the_whitelist_are_refused(value: str) -> None:
    with pytest.raises(UnsafeCommand, match="unsafe value"):
        commands.format_variables({"origination_caller_id_name": value})


@pytest.mark.parametrize(
    "template", ["loopback/{number}/{context}", "sofia/gw/1", "user/{number},user/9"]
)
def test_route_templates_must_be_sound(template: str) -> None:
    with pytest.raises(UnsafeCommand, match="route template"):
        commands.dial_string(template, "4930")


@pytest.mark.parametrize("uuid", ["", "abc def", "x\nexit", "a;b", "-leading"])
def test_uuid_commands_refuse_anything_but_a_uuid(uuid: str) -> None:
    with pytest.raises(UnsafeCommand):
        commands.uuid_kill(uuid)
    with pytest.raises(UnsafeCommand):
        commands.uuid_bridge(uuid, "b")


def test_sched_hangup_uses_the_command_freeswitch_has_in_whole_seconds() -> None:
    assert commands.sched_hangup(120, "abc-1") == "sched_hangup +120 abc-1 ALLOTTED_TIMEOUT"
    for bad in (0, 1.5, True, -3):
        with pytest.raises(UnsafeCommand):
            commands.sched_hangup(bad, "abc-1")  # type: ignore[arg-type]


def test_sched_broadcast_warns_the_call_ahead_of_the_scheduled_hangup() -> None:
    assert (
        commands.sched_broadcast(60, "abc-1", "tone_stream://%(500,500,480)")
        == "sched_broadcast +60 abc-1 tone_stream://%(500,500,480) both"
    )


def test_hangup_causes_are_upper_case_names() -> None:
    assert commands.uuid_kill("abc", "USER_BUSY") == "uuid_kill abc USER_BUSY"
    with pytest.raises(UnsafeCommand):
        commands.uuid_kill("abc", "USER_BUSY\nexit")


def test_play_and_get_digits_arguments_in_freeswitch_order() -> None:
    app, arg = commands.play_and_get_digits(
        min_digits=4,
        max_digits=12,
        tries=3,
        timeout_ms=5000,
        terminators="#",
        prompt="ivr/ivr-please_enter_pin_followed_by_pound.wav",
        invalid_prompt="ivr/ivr-that_was_an_invalid_entry.wav",
        variable="callback_pin",
        regex="\\d+",
        digit_timeout_ms=3000,
    )
    assert app == "play_and_get_digits"
    assert arg == (
        "4 12 3 5000 # ivr/ivr-please_enter_pin_followed_by_pound.wav "
        "ivr/ivr-that_was_an_invalid_entry.wav callback_pin \\d+ 3000"
    )


@pytest.mark.parametrize("sound", ["a b.wav", "x.wav\nexecute-app-name: hangup", "'x'"])
def test_application_arguments_cannot_break_out_of_sendmsg(sound: str) -> None:
    with pytest.raises(UnsafeCommand):
        commands.playback(sound)


def test_chat_flattens_line_breaks_so_a_reply_cannot_inject_a_command() -> None:
    assert (
        commands.chat("4930100", "4917011@example.com", "Balance:\n12.50 EUR\n\nexit")
        == "chat sip|4930100|4917011@example.com|Balance: 12.50 EUR exit"
    )
    with pytest.raises(UnsafeCommand):
        commands.chat("4930100", "a|b", "hi")
    with pytest.raises(UnsafeCommand, match="must not contain"):
        commands.chat("4930100", "4917011", "a|text/html|x")


def test_event_filters_take_a_word_or_a_slashed_regular_expression() -> None:
    assert (
        commands.event_filter("Event-Name", "BACKGROUND_JOB") == "filter Event-Name BACKGROUND_JOB"
    )
    assert (
        commands.event_filter("variable_callback_request_id", "/^[0-9]+$/")
        == "filter variable_callback_request_id /^[0-9]+$/"
    )


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Event-Name", "A\nevent plain ALL"),
        ("Event-Name", "two words"),
        ("Event-Name", ""),
        ("Event Name", "X"),
        ("Unique-ID\napi", "X"),
        ("Event-Name", "/a b/"),
    ],
)
def test_event_filters_cannot_carry_a_second_command(header: str, value: str) -> None:
    with pytest.raises(UnsafeCommand):
        commands.event_filter(header, value)


def test_say_string_asks_for_the_files_mod_say_plays_for_a_whole_number() -> None:
    assert commands.say_string("en", "12") == "say_string en en NUMBER pronounced ~12"
    assert commands.say_string("en", "30", "NUMBER", "iterated") == (
        "say_string en en NUMBER iterated ~30"
    )


def test_the_files_said_are_checked_and_an_error_is_refused() -> None:
    assert commands.sounds_said("digits/60.wav!digits/5.wav") == ["digits/60.wav", "digits/5.wav"]
    assert commands.sounds_said("file_string://digits/0.wav") == ["digits/0.wav"]
    for reply in ("-ERR Usage: <module_name> ...", "", "digits/6 0.wav"):
        with pytest.raises(UnsafeCommand):
            commands.sounds_said(reply)


def test_a_file_string_plays_sounds_as_one_prompt_and_checks_each() -> None:
    assert commands.file_string(["a.wav"]) == "a.wav"
    assert commands.file_string(["a.wav", "b/c.wav"]) == "file_string://a.wav!b/c.wav"
    with pytest.raises(UnsafeCommand):
        commands.file_string(["a.wav", "b c.wav"])
    with pytest.raises(UnsafeCommand):
        commands.file_string([])


@pytest.mark.parametrize(
    ("value", "say_type"),
    [
        ("12.30", "CURRENCY"),  # mod_say_en's CURRENCY: "dollars" and "cents", any currency
        ("5", "CURRENCY"),
        ("12.30", "NUMBER"),  # en_say_general_count: digits and commas only, else Parse Error
        ("1234567890", "NUMBER"),  # more than 9 digits: Parse Error
    ],
)
def test_say_string_refuses_what_mod_say_would_say_wrongly_or_not_at_all(
    value: str, say_type: str
) -> None:
    with pytest.raises(UnsafeCommand):
        commands.say_string("en", value, say_type)


@pytest.mark.parametrize(
    "body",
    [
        "Your PIN is 'secret' now",  # a ' pair: removed, and a | between them would not split
        "Don't text 'CB' twice",
        "call C:\\new",  # \n becomes a line break in FreeSWITCH, \s a space
        "a\\sb",  # \s: a space
    ],
)
def test_chat_refuses_the_quote_and_backslash_freeswitchs_chat_splitting_reads(body: str) -> None:
    with pytest.raises(UnsafeCommand, match="must not contain"):
        commands.chat("4930100", "4917011", body)
