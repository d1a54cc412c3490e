"""Family ``structures``: dicts, stacks and queues, from a lookup to balanced brackets."""

from __future__ import annotations

from .base import CodeFamily

FAMILY = CodeFamily("structures", "simple data structures")
variant = FAMILY.variant


def _small_dict(g):
    return {g.word(1, 3): g.int() for _ in range(g.length())}


def _lookup(g):
    d = _small_dict(g)
    key = g.choice(sorted(d)) if d and g.bool() else g.word(4, 5)
    return (d, key)


def _unique_values(g):
    values = list(dict.fromkeys(g.int() for _ in range(g.length())))
    return ({g.word(2, 4) + str(i): value for i, value in enumerate(values)},)


def _stack_ops(g):
    return ([g.choice(["pop", f"push {g.int()}", f"push {g.int()}"]) for _ in range(g.length(0, 10))],)


def _queue_ops(g):
    return ([g.choice(["dequeue", f"enqueue {g.int()}", f"enqueue {g.int()}"]) for _ in range(g.length(0, 10))],)


def _brackets(g):
    if g.bool():
        text = ""
        for _ in range(g.length(0, 5)):
            opener, closer = g.choice(["()", "[]", "{}"])
            text = g.choice([opener + text + closer, text + opener + closer])
        return (text,)
    return ("".join(g.choice("()[]{}x") for _ in range(g.length(1, 8))),)


def _counts(g):
    return ({g.choice("abcde"): g.int(1, 9) for _ in range(g.length())},
            {g.choice("abcde"): g.int(1, 9) for _ in range(g.length())})


# ----------------------------------------------------------------------------- tier 0
@variant(tier=0, doc="Return d[key] if key is in the dict d, else None.", inputs=_lookup, edges=[({}, "a")])
def get_value(d: dict[str, int], key: str) -> int | None:
    return d.get(key)


@variant(tier=0, doc="Return how many keys the dict d has.", inputs=lambda g: (_small_dict(g),), edges=[({},)])
def count_keys(d: dict[str, int]) -> int:
    return len(d)


@variant(tier=0, doc="Return how many distinct values the list xs contains.", inputs=lambda g: (g.ints(-3, 3),),
         edges=[([],)])
def distinct_count(xs: list[int]) -> int:
    return len(set(xs))


@variant(tier=0, doc="Return the tuple (a, b).", inputs=lambda g: (g.int(), g.word()))
def make_pair(a: int, b: str) -> tuple[int, str]:
    return (a, b)


# ----------------------------------------------------------------------------- tier 1
@variant(tier=1, doc="Return a dict from each character of s to the number of times it occurs.",
         inputs=lambda g: (g.word(0, 10, "abcd "),), edges=[("",)])
def char_frequency(s: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for char in s:
        counts[char] = counts.get(char, 0) + 1
    return counts


@variant(tier=1, doc="Return the dict d with keys and values swapped (the values of d are distinct).",
         inputs=_unique_values, edges=[({},)])
def invert_dict(d: dict[str, int]) -> dict[int, str]:
    return {value: key for key, value in d.items()}


@variant(tier=1, doc="Group words by length: return a dict from each length to the list of words of that length, "
         "in their original order.", inputs=lambda g: ([g.word(1, 5) for _ in range(g.length())],), edges=[([],)])
def group_by_length(words: list[str]) -> dict[int, list[str]]:
    groups: dict[int, list[str]] = {}
    for word in words:
        groups.setdefault(len(word), []).append(word)
    return groups


@variant(tier=1, doc="Run stack operations ('push N' or 'pop'; a pop on an empty stack does nothing) and return the "
         "final stack as a list, bottom first.", inputs=_stack_ops, edges=[([],), (["pop", "push 1"],)])
def stack_after(ops: list[str]) -> list[int]:
    stack: list[int] = []
    for op in ops:
        if op == "pop":
            if stack:
                stack.pop()
        else:
            stack.append(int(op.split()[1]))
    return stack


@variant(tier=1, doc="Return a dict from each word of s (split on whitespace) to how often it occurs.",
         inputs=lambda g: (" ".join(g.choice(["a", "b", "see", "the"]) for _ in range(g.length())),), edges=[("",)])
def word_count(s: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for word in s.split():
        counts[word] = counts.get(word, 0) + 1
    return counts


# ----------------------------------------------------------------------------- tier 2
@variant(tier=2, doc="Return True if the brackets (), [] and {} in s are balanced and properly nested, else False; "
         "other characters are ignored.", inputs=_brackets, edges=[("",), ("(]",), ("([]{})",), ("((",), ("x)",)])
def balanced(s: str) -> bool:
    pairs, stack = {")": "(", "]": "[", "}": "{"}, []
    for char in s:
        if char in "([{":
            stack.append(char)
        elif char in pairs:
            if not stack or stack.pop() != pairs[char]:
                return False
    return not stack


@variant(tier=2, doc="Return the k most frequent values of xs, most frequent first; ties go to the smaller value.",
         inputs=lambda g: (g.ints(-3, 3, min_len=1), g.int(1, 3)), edges=[([1, 2, 2, 1], 1), ([5], 2)])
def top_k_frequent(xs: list[int], k: int) -> list[int]:
    counts: dict[int, int] = {}
    for x in xs:
        counts[x] = counts.get(x, 0) + 1
    return sorted(counts, key=lambda value: (-counts[value], value))[:k]


@variant(tier=2, doc="Merge two dicts of counts: the result has every key of a and b, with the values added.",
         inputs=_counts, edges=[({}, {}), ({"a": 1}, {"a": 2})])
def merge_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, 0) + value
    return out


@variant(tier=2, doc="Run queue operations ('enqueue N' or 'dequeue'; a dequeue on an empty queue does nothing) "
         "and return the list of dequeued values in order.", inputs=_queue_ops, edges=[([],), (["dequeue"],)])
def dequeued(ops: list[str]) -> list[int]:
    queue: list[int] = []
    out = []
    for op in ops:
        if op == "dequeue":
            if queue:
                out.append(queue.pop(0))
        else:
            queue.append(int(op.split()[1]))
    return out
