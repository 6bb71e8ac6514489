"""esl-callback: a callback platform for VoIP operators, built on FreeSWITCH's Event Socket."""

__version__ = "0.1.0"
