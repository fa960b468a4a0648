"""Task 1 as relevance classification: one (question, resource) pair at a time, scored, then thresholded.

A *relevance scorer* is any object with ``score_questions([(question, lines)]) -> [[score per line]]``:

* :class:`DecoderRelevance` wraps a chat LM: the pair is one short prompt and the score is the log-probability of the
  label token ``yes`` as the first token of the reply (one forward pass per pair, pairs batched within a token
  budget, only the last position's logits computed). A student learns it by SFT on ``yes``/``no`` targets
  (:func:`relevance_pairs`).
* ``cross_encoder.CrossEncoderRelevance``: a fine-tuned MiniLM cross-encoder (logit of "relevant");
* ``bm25.BM25Relevance``: the retrieval baseline.

:func:`choose` turns scores into a selection: every line at or above the threshold (optionally only the best
``top_k`` of them); nothing above it means the whole question abstains. :func:`tune_threshold` picks the threshold
that maximises micro F1 on a dev split (midpoints between observed scores, so it never sits on a training score).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from ehrforge.core.types import Message
from ehrforge.core.contract import Record
from ehrforge.core.backends.capabilities import BackendCapability, supports

#: kept short: every token of the pair prompt is paid once per (question, resource) pair
RELEVANCE_SYSTEM = "Is the resource needed to answer the question? Reply yes or no."
LABELS = ("yes", "no")
#: token budget of one scoring batch (pairs x padded length): bounds memory and keeps batches similar in length
PAIR_BATCH_TOKENS = 4096


def pair_text(line: str) -> str:
    """The resource as the classifier sees it: the condensed line without its short id (ids carry no meaning).

    >>> pair_text("6a4160eb Condition: Asthma; active")
    'Condition: Asthma; active'
    """
    head, _, rest = line.partition(" ")
    return rest if rest and ":" in rest.split(" ", 1)[0] else line


def relevance_messages(question: str, line: str) -> list[Message]:
    # the resource starts a new line, so the shared head (everything before it) tokenizes the same on its own
    user = f"Question: {question}\nResource:\n{pair_text(line)}"
    return [{"role": "system", "content": RELEVANCE_SYSTEM}, {"role": "user", "content": user}]


def relevance_pairs(records: Sequence[Record]) -> list[Record]:
    """One training record per (question, candidate): ``{"id", "question", "line", "relevant"}``.

    >>> rec = {"id": "q", "question": "Q?", "candidates": [{"id": "a", "line": "x"}, {"id": "b", "line": "y"}], "relevant_ids": ["b"]}
    >>> [(p["id"], p["relevant"]) for p in relevance_pairs([rec])]
    [('q#0', False), ('q#1', True)]
    """
    out = []
    for rec in records:
        gold = set(rec["relevant_ids"])
        for i, cand in enumerate(rec["candidates"]):
            out.append({"id": f"{rec['id']}#{i}", "question": rec["question"], "line": cand["line"], "relevant": cand["id"] in gold})
    return out


def choose(ids: Sequence[str], scores: Sequence[float], threshold: float, top_k: int | None = None) -> list[str]:
    """Ids scoring at least ``threshold`` (best first when ``top_k`` caps them), else [] (abstain).

    >>> choose(["a", "b", "c"], [0.9, 0.2, 0.5], 0.4)
    ['a', 'c']
    >>> choose(["a", "b", "c"], [0.9, 0.2, 0.5], 0.4, top_k=1)
    ['a']
    """
    picked = [(s, i) for i, (rid, s) in enumerate(zip(ids, scores)) if s >= threshold]
    if top_k is not None:
        picked = sorted(picked, reverse=True)[:top_k]
    return [ids[i] for _, i in sorted(picked, key=lambda p: p[1])]


def micro_f1(gold: Sequence[set[str]], picked: Sequence[Sequence[str]]) -> float:
    tp = fp = fn = 0
    for g, p in zip(gold, picked):
        tp += len(g & set(p))
        fp += len(set(p) - g)
        fn += len(g - set(p))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def tune_threshold(ids: Sequence[Sequence[str]], scores: Sequence[Sequence[float]], gold: Sequence[Sequence[str]],
                   *, top_k: int | None = None, max_candidates: int = 400) -> dict[str, float]:
    """The threshold with the best dev micro F1 (ties: the higher threshold, i.e. fewer false positives).

    >>> tune_threshold([["a", "b"], ["c", "d"]], [[0.9, 0.1], [0.2, 0.8]], [["a"], ["d"]])["threshold"]
    0.5
    """
    values = sorted({s for row in scores for s in row})
    if not values:
        return {"threshold": 0.0, "dev_f1": 0.0}
    mids = [values[0] - 1.0] + [(a + b) / 2 for a, b in zip(values, values[1:])] + [values[-1] + 1.0]
    if len(mids) > max_candidates:  # quantiles are enough: F1 is flat between close scores
        step = len(mids) / max_candidates
        mids = [mids[int(i * step)] for i in range(max_candidates)] + [mids[-1]]
    gold_sets = [set(g) for g in gold]
    best = (-1.0, 0.0)
    for t in mids:
        f1 = micro_f1(gold_sets, [choose(i, s, t, top_k) for i, s in zip(ids, scores)])
        if f1 > best[0] or (f1 == best[0] and t > best[1]):
            best = (f1, t)
    return {"threshold": round(best[1], 6), "dev_f1": round(best[0], 4)}


def label_token_ids(tokenizer: Any, label: str = "yes") -> list[int]:
    """First token ids of the label as a reply may start it (``yes`` and ``Yes``); the score adds their mass."""
    ids = []
    for variant in (label, label.capitalize()):
        toks = tokenizer(variant, add_special_tokens=False)["input_ids"]
        if toks and toks[0] not in ids:
            ids.append(toks[0])
    return ids


class DecoderRelevance:
    """Relevance from a causal LM's first reply token: ``log p(yes | pair prompt)`` (log of the summed mass of
    ``yes``/``Yes``). Works on any backend exposing ``model``, ``tokenizer`` and ``render`` (the transformers
    backend), so base and fine-tuned decoders are scored the same way."""

    name = "decoder"
    capabilities = frozenset({BackendCapability.SCORE})

    def __init__(self, backend: Any, *, batch_tokens: int = PAIR_BATCH_TOKENS) -> None:
        self.backend = backend
        self.batch_tokens = batch_tokens
        self.yes_ids = label_token_ids(backend.tokenizer)
        self.pairs_scored = 0
        self.tokens_scored = 0
        self.batches = 0

    def score_prompts(self, prompts: Sequence[str]) -> list[float]:
        import torch

        tok, model = self.backend.tokenizer, self.backend.model
        encoded = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out = [0.0] * len(encoded)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        start = 0
        while start < len(order):
            # grow the batch while (pairs x longest) stays within the budget; lengths ascend, so the last is longest
            end = start + 1
            while end < len(order) and (end - start + 1) * len(encoded[order[end]]) <= self.batch_tokens:
                end += 1
            idx = order[start:end]
            width = len(encoded[idx[-1]])
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):  # left padding: the last position is every prompt's last token
                ids[row, width - len(encoded[i]):] = torch.tensor(encoded[i])
                mask[row, width - len(encoded[i]):] = 1
            with torch.inference_mode():
                logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device), logits_to_keep=1).logits[:, -1, :]
            logp = torch.log_softmax(logits.float(), dim=-1)
            yes = torch.logsumexp(logp[:, self.yes_ids], dim=-1)
            for row, i in enumerate(idx):
                out[i] = float(yes[row])
            self.tokens_scored += int(mask.sum())
            self.batches += 1
            start = end
        self.pairs_scored += len(prompts)
        return out

    def score_questions(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
        """Per question, the shared prompt head (system + question) runs once and its key/value cache is reused by
        every resource of that question: the same log p(yes) as :meth:`score_prompts` on the full prompts, for
        about half the tokens (a resource line is shorter than the head)."""
        return [self.score_shared(q, lines) if lines else [] for q, lines in items]

    def score_shared(self, question: str, lines: Sequence[str]) -> list[float]:
        import copy

        import torch

        tok, model = self.backend.tokenizer, self.backend.model
        marker = "\u2063RESOURCE\u2063"  # invisible separator: never part of a real line
        head, tail = self.backend.render(relevance_messages(question, marker)).split(marker)
        head_ids = tok(head, add_special_tokens=False)["input_ids"]
        suffixes = [tok(pair_text(line) + tail, add_special_tokens=False)["input_ids"] for line in lines]
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        out = [0.0] * len(lines)
        with torch.inference_mode():
            cache = model(input_ids=torch.tensor([head_ids], device=model.device), use_cache=True).past_key_values
            self.tokens_scored += len(head_ids)
            order = sorted(range(len(lines)), key=lambda i: len(suffixes[i]))
            start = 0
            while start < len(order):
                end = start + 1
                while end < len(order) and (end - start + 1) * (len(head_ids) + len(suffixes[order[end]])) <= self.batch_tokens:
                    end += 1
                idx = order[start:end]
                width = len(suffixes[idx[-1]])
                ids = torch.full((len(idx), width), pad, dtype=torch.long)
                mask = torch.zeros((len(idx), len(head_ids) + width), dtype=torch.long)
                mask[:, : len(head_ids)] = 1
                for row, i in enumerate(idx):  # right padding: the head's positions stay where the cache put them
                    ids[row, : len(suffixes[i])] = torch.tensor(suffixes[i])
                    mask[row, len(head_ids) : len(head_ids) + len(suffixes[i])] = 1
                shared = copy.deepcopy(cache)
                shared.batch_repeat_interleave(len(idx))
                positions = torch.arange(len(head_ids), len(head_ids) + width).unsqueeze(0).expand(len(idx), -1)
                logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device), past_key_values=shared,
                               position_ids=positions.to(model.device), use_cache=True).logits
                last = torch.tensor([len(suffixes[i]) - 1 for i in idx])
                logp = torch.log_softmax(logits[torch.arange(len(idx)), last].float(), dim=-1)
                yes = torch.logsumexp(logp[:, self.yes_ids], dim=-1)
                for row, i in enumerate(idx):
                    out[i] = float(yes[row])
                self.tokens_scored += int(sum(len(suffixes[i]) for i in idx))
                self.batches += 1
                start = end
        self.pairs_scored += len(lines)
        return out

    def stats(self) -> dict[str, int]:
        return {"pairs_scored": self.pairs_scored, "tokens_scored": self.tokens_scored, "batches": self.batches,
                "batch_tokens": self.batch_tokens}


def relevance_scorer(backend: Any) -> Any | None:
    """The backend's own scorer (cross-encoder, BM25, a pipeline), a decoder scorer for a local LM, or None for
    backends that can only generate (HTTP endpoints, fakes): those select by listing ids instead."""
    if supports(backend, BackendCapability.SCORE):
        return backend
    if not supports(backend, BackendCapability.LOCAL_WEIGHTS):
        return None
    scorer = _DECODER_SCORERS.get(backend)
    if scorer is None:  # one scorer per backend: its counters cover the whole run
        scorer = _DECODER_SCORERS[backend] = DecoderRelevance(backend)
    return scorer


#: the decoder scorer of each live local backend (kept beside it, not written onto it)
_DECODER_SCORERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class RelevancePipeline:
    """Task 1 by one model, task 2 by another (a cross-encoder selector and a fine-tuned answerer): the pair is one
    backend for ``FHIRQATask.predict`` and ``evaluate``."""

    capabilities = frozenset({BackendCapability.SCORE})

    def __init__(self, selector: Any, answerer: Any) -> None:
        scorer = relevance_scorer(selector)
        if scorer is None:
            raise TypeError("the selector cannot score relevance")
        self.scorer, self.answerer = scorer, answerer
        self.name = getattr(scorer, "name", "pipeline")

    def score_questions(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
        return self.scorer.score_questions(items)

    def generate(self, batch: list[list[Message]], **kwargs: Any) -> Any:
        return self.answerer.generate(batch, **kwargs)
