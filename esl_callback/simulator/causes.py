"""FreeSWITCH hangup causes and their Q.850 codes (switch_channel.c CAUSE_CHART)."""

from __future__ import annotations

CAUSES: dict[str, int] = {
    "NONE": 0,
    "UNALLOCATED_NUMBER": 1,
    "NO_ROUTE_TRANSIT_NET": 2,
    "NO_ROUTE_DESTINATION": 3,
    "CHANNEL_UNACCEPTABLE": 6,
    "CALL_AWARDED_DELIVERED": 7,
    "NORMAL_CLEARING": 16,
    "USER_BUSY": 17,
    "NO_USER_RESPONSE": 18,
    "NO_ANSWER": 19,
    "SUBSCRIBER_ABSENT": 20,
    "CALL_REJECTED": 21,
    "NUMBER_CHANGED": 22,
    "REDIRECTION_TO_NEW_DESTINATION": 23,
    "EXCHANGE_ROUTING_ERROR": 25,
    "DESTINATION_OUT_OF_ORDER": 27,
    "INVALID_NUMBER_FORMAT": 28,
    "FACILITY_REJECTED": 29,
    "RESPONSE_TO_STATUS_ENQUIRY": 30,
    "NORMAL_UNSPECIFIED": 31,
    "NORMAL_CIRCUIT_CONGESTION": 34,
    "NETWORK_OUT_OF_ORDER": 38,
    "NORMAL_TEMPORARY_FAILURE": 41,
    "SWITCH_CONGESTION": 42,
    "ACCESS_INFO_DISCARDED": 43,
    "REQUESTED_CHAN_UNAVAIL": 44,
    "PRE_EMPTED": 45,
    "FACILITY_NOT_SUBSCRIBED": 50,
    "OUTGOING_CALL_BARRED": 52,
    "INCOMING_CALL_BARRED": 54,
    "BEARERCAPABILITY_NOTAUTH": 57,
    "BEARERCAPABILITY_NOTAVAIL": 58,
    "SERVICE_UNAVAILABLE": 63,
    "BEARERCAPABILITY_NOTIMPL": 65,
    "CHAN_NOT_IMPLEMENTED": 66,
    "FACILITY_NOT_IMPLEMENTED": 69,
    "SERVICE_NOT_IMPLEMENTED": 79,
    "INVALID_CALL_REFERENCE": 81,
    "INCOMPATIBLE_DESTINATION": 88,
    "INVALID_MSG_UNSPECIFIED": 95,
    "MANDATORY_IE_MISSING": 96,
    "MESSAGE_TYPE_NONEXIST": 97,
    "WRONG_MESSAGE": 98,
    "IE_NONEXIST": 99,
    "INVALID_IE_CONTENTS": 100,
    "WRONG_CALL_STATE": 101,
    "RECOVERY_ON_TIMER_EXPIRE": 102,
    "MANDATORY_IE_LENGTH_ERROR": 103,
    "PROTOCOL_ERROR": 111,
    "INTERWORKING": 127,
    "SUCCESS": 142,
    "ORIGINATOR_CANCEL": 487,
    "CRASH": 700,
    "SYSTEM_SHUTDOWN": 701,
    "LOSE_RACE": 702,
    "MANAGER_REQUEST": 703,
    "BLIND_TRANSFER": 800,
    "ATTENDED_TRANSFER": 801,
    "ALLOTTED_TIMEOUT": 802,
    "USER_CHALLENGE": 803,
    "MEDIA_TIMEOUT": 804,
    "PICKED_OFF": 805,
    "USER_NOT_REGISTERED": 806,
    "PROGRESS_TIMEOUT": 807,
    "INVALID_GATEWAY": 808,
    "GATEWAY_DOWN": 809,
    "INVALID_URL": 810,
    "INVALID_PROFILE": 811,
    "NO_PICKUP": 812,
}
_BY_CODE = {code: name for name, code in CAUSES.items()}


def cause_from_text(text: str | None, default: str = "NORMAL_CLEARING") -> str:
    """switch_channel_str2cause: a name (any case) or a number; unknown text gives NONE."""
    if not text:
        return default
    text = text.strip()
    if text[:1].isdigit():
        digits = "".join(ch for ch in text if ch.isdigit()) or "0"
        return _BY_CODE.get(int(digits), "NONE")
    upper = text.upper()
    return upper if upper in CAUSES else "NONE"


def q850(cause: str) -> int:
    """The Q.850 code FreeSWITCH reports (internal causes above 127 map to 16)."""
    code = CAUSES.get(cause, 0)
    return code if code <= CAUSES["INTERWORKING"] else CAUSES["NORMAL_CLEARING"]


# What mod_sofia makes of a SIP final response to an INVITE (sofia_glue.c,
# sofia_glue_sip_cause_to_freeswitch); any other status is NORMAL_UNSPECIFIED.
SIP_STATUS_CAUSES: dict[int, str] = {
    **dict.fromkeys((401, 402, 403, 407, 603, 608), "CALL_REJECTED"),
    607: "UNWANTED",
    404: "UNALLOCATED_NUMBER",
    **dict.fromkeys((485, 604), "NO_ROUTE_DESTINATION"),
    **dict.fromkeys((408, 504), "RECOVERY_ON_TIMER_EXPIRE"),
    410: "NUMBER_CHANGED",
    **dict.fromkeys((413, 414, 416, 420, 421, 423, 505, 513), "INTERWORKING"),
    480: "NO_USER_RESPONSE",
    **dict.fromkeys((400, 481, 500, 503), "NORMAL_TEMPORARY_FAILURE"),
    **dict.fromkeys((486, 600), "USER_BUSY"),
    484: "INVALID_NUMBER_FORMAT",
    **dict.fromkeys((488, 606), "INCOMPATIBLE_DESTINATION"),
    502: "NETWORK_OUT_OF_ORDER",
    405: "SERVICE_UNAVAILABLE",
    **dict.fromkeys((406, 415, 501), "SERVICE_NOT_IMPLEMENTED"),
    **dict.fromkeys((482, 483), "EXCHANGE_ROUTING_ERROR"),
    487: "ORIGINATOR_CANCEL",
}


def cause_from_sip_status(status: int) -> str:
    """The hangup cause of a call a SIP peer refused with `status`."""
    return SIP_STATUS_CAUSES.get(status, "NORMAL_UNSPECIFIED")
