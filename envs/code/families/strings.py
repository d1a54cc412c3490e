"""Family ``strings``: string transforms, from reversing a string to run-length encoding."""

from __future__ import annotations

from .base import CodeFamily

FAMILY = CodeFamily("strings", "string transforms")
variant = FAMILY.variant


def _palindrome_or_not(g):
    half = g.word(1, 4, "abc")
    if g.bool():
        return (half + g.choice(["", "x"]) + half[::-1],)
    return (g.word(2, 6, "abc"),)


def _runs(g):
    return ("".join(g.choice("abc") * g.int(1, 4) for _ in range(g.length(1))),)


def _maybe_anagram(g):
    word = g.word(3, 7, "abcdeilnst")
    if g.bool():
        letters = list(word)
        g.rng.shuffle(letters)
        return (word, "".join(letters).upper())
    return (word, g.word(3, 7, "abcdeilnst"))


# ----------------------------------------------------------------------------- tier 0
@variant(tier=0, doc="Return the string s reversed.", inputs=lambda g: (g.word(),), edges=[("",), ("a",)])
def reverse_string(s: str) -> str:
    return s[::-1]


@variant(tier=0, doc="Return s in upper case.", inputs=lambda g: (g.sentence(1, 3),), edges=[("",)])
def shout(s: str) -> str:
    return s.upper()


@variant(tier=0, doc="Return the number of characters in s.", inputs=lambda g: (g.sentence(1, 3),), edges=[("",)])
def string_length(s: str) -> int:
    return len(s)


@variant(tier=0, doc="Return s repeated n times (n >= 0).", inputs=lambda g: (g.word(1, 3), g.int(0, 4)),
         edges=[("ab", 0)])
def repeat(s: str, n: int) -> str:
    return s * n


@variant(tier=0, doc="Return the words a and b joined by a single space.", inputs=lambda g: (g.word(), g.word()))
def join_words(a: str, b: str) -> str:
    return a + " " + b


# ----------------------------------------------------------------------------- tier 1
@variant(tier=1, doc="Return how many vowels (a, e, i, o, u, in either case) s contains.",
         inputs=lambda g: (g.sentence(1, 4),), edges=[("",), ("AEIOU",), ("xyz",)])
def count_vowels(s: str) -> int:
    return sum(1 for char in s.lower() if char in "aeiou")


@variant(tier=1, doc="Return True if s reads the same forwards and backwards, else False.",
         inputs=_palindrome_or_not, edges=[("",), ("a",), ("ab",)])
def is_palindrome(s: str) -> bool:
    return s == s[::-1]


@variant(tier=1, doc="Return s with the first letter of every word in upper case (words are separated by single "
         "spaces; s is lower case).", inputs=lambda g: (g.sentence(1, 4),), edges=[("",), ("a b",)])
def capitalize_words(s: str) -> str:
    return " ".join(word[:1].upper() + word[1:] for word in s.split(" "))


@variant(tier=1, doc="Return s with all space characters removed.", inputs=lambda g: (g.sentence(1, 5),),
         edges=[("",), ("   ",)])
def remove_spaces(s: str) -> str:
    return s.replace(" ", "")


@variant(tier=1, doc="Return how many times the character c occurs in s.",
         inputs=lambda g: (g.word(0, 12, "abc"), g.choice("abc")), edges=[("", "a")])
def count_char(s: str, c: str) -> int:
    return s.count(c)


# ----------------------------------------------------------------------------- tier 2
@variant(tier=2, doc="Shift every lower-case letter of s by k places in the alphabet, wrapping around "
         "(k may be negative or larger than 26); leave other characters unchanged.",
         inputs=lambda g: (g.sentence(1, 3) + g.choice(["", "!", ", ok?"]), g.int(-30, 30)),
         edges=[("xyz", 3), ("abc", -1), ("hello, world", 26)])
def caesar_shift(s: str, k: int) -> str:
    out = []
    for char in s:
        if "a" <= char <= "z":
            out.append(chr((ord(char) - ord("a") + k) % 26 + ord("a")))
        else:
            out.append(char)
    return "".join(out)


@variant(tier=2, doc="Run-length encode s: each run of equal characters becomes the character followed by the "
         "run length (run_length_encode('aaab') == 'a3b1').", inputs=_runs, edges=[("",), ("a",), ("abab",)])
def run_length_encode(s: str) -> str:
    out, i = [], 0
    while i < len(s):
        j = i
        while j < len(s) and s[j] == s[i]:
            j += 1
        out.append(f"{s[i]}{j - i}")
        i = j
    return "".join(out)


@variant(tier=2, doc="Return True if a and b are anagrams of each other, ignoring case and spaces, else False.",
         inputs=_maybe_anagram, edges=[("", ""), ("Listen", "Silent"), ("dormitory", "dirty room"), ("ab", "abb")])
def is_anagram(a: str, b: str) -> bool:
    return sorted(a.replace(" ", "").lower()) == sorted(b.replace(" ", "").lower())


@variant(tier=2, doc="Return the longest word of s (words are separated by whitespace); the first one on a tie; "
         "'' if s has no words.", inputs=lambda g: (g.sentence(0, 6),), edges=[("",), ("ab cd",), ("  a  bbb ",)])
def longest_word(s: str) -> str:
    best = ""
    for word in s.split():
        if len(word) > len(best):
            best = word
    return best


@variant(tier=2, doc="Return s with characters at even indexes in upper case and at odd indexes in lower case "
         "(index 0 is even; spaces count as characters).", inputs=lambda g: (g.sentence(1, 3),),
         edges=[("",), ("a b",)])
def alternate_case(s: str) -> str:
    return "".join(char.upper() if i % 2 == 0 else char.lower() for i, char in enumerate(s))
