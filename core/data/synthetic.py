"""A synthetic catalogue whose item texts carry the same latent structure as the user sequences.

Items belong to topics laid on a ring; each topic has its own words, so an item's text says which topic it
is in. Users walk the ring (drifting to a neighbouring topic now and then) and pick items by a Zipf
popularity inside the current topic; half of the time they take the "next episode" of their previous item,
which gives the sequence models something to learn beyond popularity. Rare items share their topic's words
with popular ones: text is informative exactly where collaborative data is thin — the situation PAD targets.

Everything is drawn with whole-array numpy operations (no per-interaction Python loop), so a catalogue of
200,000 items and 2,000,000 interactions takes seconds. Interactions come back as integer codes with the raw
ids listed once (`u17`, `i123`), never as millions of Python strings. The item table and the interactions
use separate random streams of the same seed: the loader can build either one without the other.
"""

from __future__ import annotations

import numpy as np

from core.config import Synthetic
from core.errors import InputError

_SYLLABLES = np.array(["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "qu", "sa", "do", "fi", "gu", "ha", "je"])
_SHARED = np.array(["classic", "new", "deluxe", "edition", "collection", "series", "pack", "original", "special"])
WORDS_PER_TOPIC = 6
MAX_LENGTH = 400  # a user's sequence length is geometric with the configured mean, 5 ≤ length ≤ MAX_LENGTH


def _words(rng: np.random.Generator, n: int) -> list[str]:
    """n made-up words of 2–3 syllables."""
    lengths = rng.integers(2, 4, size=n)
    syllables = rng.choice(_SYLLABLES, size=(n, 3))
    return ["".join(row[:k]) for row, k in zip(syllables, lengths)]


class Catalogue:
    """The latent structure both halves share: item topics, each topic's members and their popularity."""

    def __init__(self, cfg: Synthetic, seed: int):
        for key in ("n_users", "n_items", "n_topics"):
            if getattr(cfg, key) < 1:
                raise InputError(f"dataset.synthetic.{key} = {getattr(cfg, key)} must be at least 1.")
        if cfg.n_items < cfg.n_topics:
            raise InputError(f"dataset.synthetic.n_items = {cfg.n_items} must be at least dataset.synthetic.n_topics "
                             f"({cfg.n_topics}): every topic needs an item.")
        if not (cfg.mean_length >= 1 and 0 <= cfg.drift <= 1):
            raise InputError(f"dataset.synthetic: mean_length ({cfg.mean_length}) must be ≥ 1 and drift "
                             f"({cfg.drift}) within 0..1.")
        rng = np.random.default_rng([seed, 0])
        self.cfg = cfg
        # topics of (nearly) equal size in a random arrangement: no topic is ever empty
        self.item_topic = rng.permutation(np.arange(cfg.n_items) % cfg.n_topics)
        # members of each topic in id order: `order` lists items topic by topic, `start[t]` where topic t begins
        self.order = np.argsort(self.item_topic, kind="stable")
        self.size = np.bincount(self.item_topic, minlength=cfg.n_topics)
        self.start = np.concatenate([[0], np.cumsum(self.size)[:-1]])
        # position of each item inside its topic (the "episode" number)
        self.position = np.empty(cfg.n_items, dtype=np.int64)
        self.position[self.order] = np.arange(cfg.n_items) - np.repeat(self.start, self.size)
        # popularity inside a topic: Zipf over a random order of its members, so every topic has a head and a tail
        self.popularity_rank = np.empty(cfg.n_items, dtype=np.int64)
        for t in range(cfg.n_topics):
            members = self.order[self.start[t]: self.start[t] + self.size[t]]
            self.popularity_rank[members] = rng.permutation(self.size[t])

    def member(self, topic: np.ndarray, position: np.ndarray) -> np.ndarray:
        """Item ids at `position` inside `topic` (elementwise)."""
        return self.order[self.start[topic] + position]


def generate_items(cfg: Synthetic, seed: int = 0) -> dict[str, list]:
    """The item table: item_id, title (three of the topic's words, a shared word, the topic's name), topic."""
    cat = Catalogue(cfg, seed)
    rng = np.random.default_rng([seed, 1])
    topic_words = np.array(_words(rng, cfg.n_topics * WORDS_PER_TOPIC)).reshape(cfg.n_topics, WORDS_PER_TOPIC)
    topic_names = [w.capitalize() for w in _words(rng, cfg.n_topics)]
    # three distinct words of the item's topic: the first three of a random permutation of the six
    pick = np.argsort(rng.random((cfg.n_items, WORDS_PER_TOPIC)), axis=1)[:, :3]
    words = topic_words[cat.item_topic[:, None], pick]
    shared = rng.choice(_SHARED, size=cfg.n_items)
    titles = [
        f"{w[0].capitalize()} {w[1]} {s} — a {topic_names[t]} {w[2]}"
        for w, s, t in zip(words.tolist(), shared.tolist(), cat.item_topic.tolist())
    ]
    if cfg.series > 0:  # its own stream: the titles above stay what they were without series
        srng = np.random.default_rng([seed, 3])
        group = cat.position // cfg.series  # the series inside the topic
        n_groups = int(group.max()) + 1
        names = np.array(_words(srng, cfg.n_topics * n_groups)).reshape(cfg.n_topics, n_groups)
        titles = [f"{names[t, g].capitalize()} {e + 1}: {title}" for title, t, g, e in
                  zip(titles, cat.item_topic.tolist(), group.tolist(), (cat.position % cfg.series).tolist())]
    return {
        "item_id": [f"i{i}" for i in range(cfg.n_items)],
        "title": titles,
        "topic": [topic_names[t] for t in cat.item_topic.tolist()],
    }


def generate_interactions(cfg: Synthetic, seed: int = 0) -> dict[str, np.ndarray | list[str]]:
    """Integer codes `user` [n] (into `user_ids`), `item` [n] (into `item_ids`), `time` [n] (the step inside
    the user's sequence) and `rating` [n] (all 1), users one after the other."""
    cat = Catalogue(cfg, seed)
    rng = np.random.default_rng([seed, 2])
    lengths = np.clip(rng.geometric(1.0 / cfg.mean_length, size=cfg.n_users), 5, MAX_LENGTH)
    n = int(lengths.sum())
    user = np.repeat(np.arange(cfg.n_users), lengths)
    first = np.zeros(n, dtype=bool)
    first[np.concatenate([[0], np.cumsum(lengths)[:-1]])] = True
    step = np.arange(n) - np.repeat(np.cumsum(lengths) - lengths, lengths)

    # the walk on the ring: a random start per user, then each step drifts by ±1 with probability `drift`
    move = np.where(rng.random(n) < cfg.drift, np.where(rng.random(n) < 0.5, 1, -1), 0)
    walk = np.cumsum(move)
    walk -= np.repeat(walk[first] - move[first], lengths)  # restart the sum at every user's first step
    topic = (np.repeat(rng.integers(0, cfg.n_topics, size=cfg.n_users), lengths) + walk) % cfg.n_topics

    # "next episode": the previous item is in the current topic and a fair coin says so
    same_topic = np.concatenate([[False], topic[1:] == topic[:-1]])
    follow = ~first & same_topic & (rng.random(n) < 0.5)
    # every other step draws a position by Zipf popularity inside its topic (one vectorised draw per topic)
    position = np.zeros(n, dtype=np.int64)
    draws = np.flatnonzero(~follow)
    draws = draws[np.argsort(topic[draws], kind="stable")]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(topic[draws], minlength=cfg.n_topics))])
    for t in range(cfg.n_topics):
        at = draws[bounds[t]: bounds[t + 1]]
        members = cat.order[cat.start[t]: cat.start[t] + cat.size[t]]
        weights = 1.0 / (cat.popularity_rank[members] + 1.0) ** cfg.tail_exponent
        position[at] = rng.choice(len(members), size=len(at), p=weights / weights.sum())
    # a run of follows continues from the last drawn step: position + steps since then, around the topic
    index = np.arange(n)
    anchor = np.maximum.accumulate(np.where(follow, 0, index))
    position = (position[anchor] + (index - anchor)) % cat.size[topic]
    item = cat.member(topic, position)
    return {
        "user": user,
        "item": item,
        "time": step.astype(np.float64),
        "rating": np.ones(n, dtype=np.float64),
        "user_ids": [f"u{u}" for u in range(cfg.n_users)],
        "item_ids": [f"i{i}" for i in range(cfg.n_items)],
    }
