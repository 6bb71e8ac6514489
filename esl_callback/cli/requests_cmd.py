"""`esl-callback requests`: callback requests as the database holds them."""

from __future__ import annotations

from typing import Any

import click
from peewee import JOIN

from esl_callback.callback import requests, status
from esl_callback.cli.common import emit, json_option, with_database
from esl_callback.models import Account, CallbackRequest


def describe(request: CallbackRequest) -> dict[str, Any]:
    """A request and its legs as plain data; a leg's state and cost as the portal shows them."""
    bridged = request.state == requests.State.BRIDGED
    return {
        "id": request.id,
        "created_at": request.created_at.isoformat(sep=" ", timespec="seconds"),
        "account": request.account.name if request.account_id else None,
        "trigger": request.trigger,
        "method": request.method,
        "mode": request.mode,
        "state": request.state,
        "source": request.source,
        "destination": request.destination,
        "caller_id": request.caller_id,
        "called_number": request.called_number,
        "cause": request.failure_cause,
        "legs": [
            {
                "leg": leg.leg,
                "uuid": leg.uuid,
                "number": leg.number,
                "state": status.leg_status(leg, bridged),
                "billsec": leg.billsec,
                "cause": leg.hangup_cause,
                "cost": status.amount(leg.cost) if leg.billed else None,
            }
            for leg in requests.legs_of(request.id)
        ],
    }


def line(data: dict[str, Any]) -> str:
    legs = " ".join(
        f"{leg['leg']}:{leg['number']}:{leg['state']}"
        + (f"({leg['cause']})" if leg["cause"] else "")
        for leg in data["legs"]
    )
    # How it was asked for: the identification of a phone trigger, else where it came from.
    how = data["method"] if data["trigger"] == "phone" else data["trigger"]
    return (
        f"{data['id']:>6} {data['created_at']} {data['account'] or '-':<12} {how:<5} "
        f"{data['state']:<20} {data['source'] or data['caller_id'] or '-':>15} -> "
        f"{data['destination'] or data['called_number'] or '-':<15} "
        f"{data['cause'] or ''} {legs}"
    ).rstrip()


@click.command("requests")
@click.option("--live", is_flag=True, help="Only requests that have not ended.")
@click.option("--limit", default=50, show_default=True, help="How many, newest first.")
@json_option
@with_database()
def requests_command(live: bool, limit: int, as_json: bool) -> None:
    """List callback requests, newest first, with their legs."""
    query = CallbackRequest.select(CallbackRequest, Account).join(
        Account, on=(CallbackRequest.account == Account.id), join_type=JOIN.LEFT_OUTER
    )
    if live:
        query = query.where(CallbackRequest.state.in_(requests.LIVE))
    rows = [describe(r) for r in query.order_by(CallbackRequest.id.desc()).limit(limit)]
    emit(rows, as_json, "\n".join(line(r) for r in rows) or "no requests")


COMMANDS = [requests_command]
