"""The desktop client for customers (`esl-callback-desktop`, the `desktop` extra): a Qt window with
the phone book, the balance, callbacks with their live status, recent calls and links to the
portal, talking only to the portal's JSON API (`esl_callback/web/openapi.yaml`).

Modules: `api_client` (HTTP, off the UI thread), `event_stream` (the status stream),
`api_errors` (failures as sentences), `config` and `token_store` (what is kept between runs),
`tasks` and `live_status` (the worker threads), `wording` (amounts, times, rates), and the
window's parts (`main_window` and the views it holds).
"""
