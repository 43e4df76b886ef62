"""The environment as pytest started, before tests/conftest.py replaces the AWS
credentials with fake ones. Only the opt-in real-AWS tour (tests/test_aws_stack.py)
uses it, to run the AWS CLI and streamq in subprocesses with the caller's profile."""

from __future__ import annotations

import os

ORIGINAL: dict[str, str] = dict(os.environ)
