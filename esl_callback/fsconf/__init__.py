"""Templates of the FreeSWITCH files `esl-callback freeswitch files` writes (see fsfiles.py)."""
