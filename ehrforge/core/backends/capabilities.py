"""What a backend can do beyond ``generate``: each backend class declares ``capabilities``, callers ask
:func:`supports` (never ``hasattr``), like a task's :class:`~ehrforge.core.contract.Capability`."""

from __future__ import annotations

from enum import Enum


class BackendCapability(str, Enum):
    """What a backend can do beyond ``generate`` (declared by its class, like a task's :class:`Capability`)."""

    #: each Generation carries per-token log-probs (and entropies): confidence and abstention can be computed
    LOGPROBS = "logprobs"
    #: ``generate_stream(messages, ...)`` yields text pieces as the model writes them
    STREAM = "stream"
    #: ``score_questions(items)``: a relevance score per candidate passage, without generating
    SCORE = "score"
    #: the model, tokenizer and ``render()`` live in this process, so a decoder can score candidates directly
    LOCAL_WEIGHTS = "local_weights"
    #: ``count_tokens(text)`` with the model's own tokenizer
    TOKEN_COUNT = "token_count"


def capabilities_of(backend: object) -> frozenset[BackendCapability]:
    """The capabilities a backend's class declares (none for an object that declares nothing).

    >>> from ehrforge.core.backends.fake import FakeBackend
    >>> sorted(c.value for c in capabilities_of(FakeBackend()))
    ['logprobs']
    >>> capabilities_of(object())
    frozenset()
    """
    declared = getattr(type(backend), "capabilities", frozenset())  # the one place a backend's class is asked
    return frozenset(c for c in declared if isinstance(c, BackendCapability))


def supports(backend: object, capability: BackendCapability) -> bool:
    """Whether ``backend`` declares ``capability`` (callers dispatch on this, never on ``hasattr``)."""
    return capability in capabilities_of(backend)
