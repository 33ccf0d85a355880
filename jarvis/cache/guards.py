"""False-hit guards: after the vector check, a cheap lexical check that vetoes a semantic match
when the two prompts differ in a number, a negation or a named entity. Embeddings place "What is
2+2?" and "What is 2+3?" side by side; the answer must not be shared."""

from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*|\d+(?:[.,]\d+)*")
_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
    "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19", "twenty": "20",
    "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90",
    "hundred": "100", "thousand": "1000", "million": "1000000", "billion": "1000000000", "dozen": "12",
    "half": "0.5", "once": "1", "twice": "2", "first": "1", "second": "2", "third": "3",
    "fourth": "4", "fifth": "5", "tenth": "10",
}
_NEGATIONS = {"not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere", "cannot", "without",
              "isnt", "arent", "wasnt", "werent", "dont", "doesnt", "didnt", "cant", "couldnt", "wont", "wouldnt",
              "shouldnt", "hasnt", "havent", "hadnt", "mustnt", "neednt", "aint", "non"}
# Capitalised words that start questions and sentences without naming anything.
_COMMON = {
    "what", "whats", "who", "whos", "how", "hows", "why", "when", "where", "which", "whom", "whose", "is", "are",
    "was", "were", "am", "be", "can", "could", "would", "should", "will", "shall", "may", "might", "must", "do",
    "does", "did", "has", "have", "had", "tell", "give", "explain", "describe", "please", "write", "list",
    "name", "show", "help", "i", "im", "ive", "id", "ill", "my", "me", "we", "our", "you", "your", "the", "a",
    "an", "in", "on", "at", "of", "for", "to", "from", "by", "with", "about", "and", "or", "but", "if", "so",
    "then", "this", "that", "these", "those", "it", "its", "there", "here", "let", "lets", "make", "find",
    "say", "define", "compare", "summarize", "summarise", "translate", "suggest", "recommend", "quick",
    "briefly", "simply", "in", "hi", "hello", "hey", "ok", "okay", "thanks", "thank", "yes", "some", "any",
    "all", "each", "every", "one", "give", "could", "kindly", "calculate", "compute", "whats", "hows",
    "using", "use", "after", "before", "during", "between", "into", "over", "under", "again", "also", "just",
    "not", "no", "never", "don't", "can't", "isn't",
}


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _plain(word: str) -> str:
    word = word.lower().replace("’", "'")
    if word.endswith("'s"):  # Canada's capital names Canada
        word = word[:-2]
    return word.replace("'", "")


def numbers(text: str) -> Counter:
    found: Counter = Counter()
    for w in _words(text):
        if w[0].isdigit():
            found[w.replace(",", "")] += 1
        elif _plain(w) in _NUMBER_WORDS:
            found[_NUMBER_WORDS[_plain(w)]] += 1
    return found


def negated(text: str) -> bool:
    """Whether the text says no (an odd count of negations: "not unlike" is not a no)."""
    count = sum(1 for w in _words(text) if _plain(w) in _NEGATIONS)
    return count % 2 == 1


def entities(text: str) -> set[str]:
    """Capitalised words that are not a sentence's usual openers, and acronyms: names, places,
    products. Lower-cased, so "paris" in the other prompt still counts as the same name."""
    out: set[str] = set()
    for w in _words(text):
        if w[0].isupper() and _plain(w) not in _COMMON and not w[0].isdigit():
            out.add(_plain(w))
    return out


def veto(new: str, old: str) -> str:
    """Why `old`'s answer must not answer `new` ("" when nothing vetoes it)."""
    if numbers(new) != numbers(old):
        return "numbers differ"
    if negated(new) != negated(old):
        return "negation differs"
    new_words = {_plain(w) for w in _words(new)}
    old_words = {_plain(w) for w in _words(old)}
    new_names, old_names = entities(new), entities(old)
    if (new_names - old_words) or (old_names - new_words):
        return "named entities differ"
    return ""
