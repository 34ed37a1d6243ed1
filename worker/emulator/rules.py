"""How strict the emulator is: each way the real service is less forgiving than a stub.

The defaults are what Agora does, or, where its documentation is silent or contradicts itself,
the reading that is hardest on a client, so that tests meet the real service's behaviour before
production does. Every strictness can be switched off (`Rules.kind()` switches off all of
them) for a test that is about something else:

- `validate_join`: a join (and a call's `properties` without `pipeline_id`) must name an LLM and
  a TTS unless a preset, a pipeline or an MLLM provides them; presets must exist, one per
  category; `idle_timeout` must be in 0..259200; UIDs must be integers unless
  `enable_string_uid`.
- `require_auth`: a request without credentials, or with malformed ones (a Basic pair with an
  empty part, a token that is not an AccessToken2 of the path's App ID or has expired), is
  answered 401. Configured credentials narrow what is accepted further.
- `check_content_type`: a request with a body must say `content-type: application/json`.
- `name_reuse`: when a name becomes free again: `after_stop` (once its agent is STOPPED or
  FAILED) or `never` (the join reference's "cannot be used repeatedly").
- `name_in_get`: whether agent.get reports `name` (the docs list it, the SDK model does not).
- `idle_exit`: an agent leaves (STOPPED, "Idle for too long") after its `idle_timeout` (default
  30 s, 0 disables) without any request addressed to it. The emulator has no RTC users, so an
  agent's own API traffic stands for the user in its channel.
- `agent_failure_rate`: the share of started agents that fail on their own ("RTC connection
  error") the moment they would have been running.
- Calls ring for `ring_seconds` before they are answered; a callee in `busy_numbers` fails the
  call when the ringing ends, one in `unanswered_numbers` after `no_answer_seconds`; both end
  the call's agent FAILED.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]
NameReuse = Literal["after_stop", "never"]


class Rules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The emulator's strictness switches (see the module docstring)."""

    validate_join: bool = True
    require_auth: bool = True
    check_content_type: bool = True
    name_reuse: NameReuse = "after_stop"
    name_in_get: bool = True
    idle_exit: bool = True
    agent_failure_rate: Probability = 0.0
    ring_seconds: NonNegative = 1.0
    busy_numbers: frozenset[str] = frozenset()
    unanswered_numbers: frozenset[str] = frozenset()
    no_answer_seconds: NonNegative = 30.0

    @classmethod
    def kind(cls) -> Rules:
        """A forgiving service: any body, any credentials, agents that stay, calls answered."""
        return cls(
            validate_join=False,
            require_auth=False,
            check_content_type=False,
            idle_exit=False,
            ring_seconds=0.0,
        )
