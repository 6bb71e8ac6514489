"""`python -m esl_callback` runs the operator CLI."""

from esl_callback.cli import main

main()
