"""Releasing models gradually and watching them live (docs/releasing.md).

Aliases and tags name stored versions; a predict service serves an alias,
splits its traffic between aliases (canary) or mirrors it to one (shadow);
an opt-in prediction log keeps what was answered, feedback joins ground
truth to it, and live scores and drift say how each version does.

This room sits below ``training`` and ``dataset`` (which read the log and
store the training summary) and above ``sql``; the server, the online API
and the commands use it.
"""

from __future__ import annotations

from .answers import Answered, AnswerSink

__all__ = ["Answered", "AnswerSink"]
