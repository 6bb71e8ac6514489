"""The GSM gateway agent: a phone or GSM modem on a PC turns calls and SMS into callback requests.

`esl-callback gateway-agent -c agent.yaml` runs it. It talks to the modem with standard AT
commands (3GPP TS 27.007 for calls, 27.005 for SMS) over a serial port (pyserial) and to the
platform over its gateway API (POST /api/v1/gateway/call and /api/v1/sms/inbound).

- `config`: the agent's YAML file, read and checked like the server's;
- `pdu`: SMS PDUs (SMS-DELIVER in, SMS-SUBMIT out), the GSM 7-bit alphabet, UCS2, concatenation;
- `at`: the AT command line protocol (final result codes, unsolicited result codes, prompts);
- `texts`: reading a received SMS in PDU or text mode, joining the parts of a long one;
- `modem`: the modem's state machine (open, initialise, read loop, reset);
- `outbox`: the on-disk queue (SQLite) of what must reach the platform and the replies to send;
- `poster`: the HTTP client that delivers the queue in order, with backoff;
- `status`: signal, registration, queue and last error, served as /status and /metrics;
- `agent`: the wiring; `fake_modem`: a simulated modem on a pseudo-terminal (tests, demo).
"""
