"""`python -m esl_callback` runs the operator CLI."""

from esl_callback.launcher import main

main()
