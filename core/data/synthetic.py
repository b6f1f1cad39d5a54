"""A synthetic catalogue whose item texts carry the same latent structure as the user sequences.

Items belong to topics laid on a ring; each topic has its own words, so an item's text says which topic it
is in. Users walk the ring (drifting to a neighbouring topic now and then) and pick items by a Zipf
popularity inside the current topic; half of the time they take the "next episode" of their previous item,
which gives the sequence models something to learn beyond popularity. Rare items share their topic's words
with popular ones: text is informative exactly where collaborative data is thin — the situation PAD targets.
"""

from __future__ import annotations

import numpy as np

from core.config import Synthetic

_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "qu", "sa", "do", "fi", "gu", "ha", "je"]
_SHARED = ["classic", "new", "deluxe", "edition", "collection", "series", "pack", "original", "special"]


def _word(rng: np.random.Generator) -> str:
    return "".join(rng.choice(_SYLLABLES, size=rng.integers(2, 4)))


def generate(cfg: Synthetic, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, list]]:
    """Interactions (user, item, timestamp, rating) and an item table (item_id, title, topic)."""
    rng = np.random.default_rng(seed)
    n_items, n_topics = cfg.n_items, cfg.n_topics
    topic_words = [[_word(rng) for _ in range(6)] for _ in range(n_topics)]
    topic_names = [_word(rng).capitalize() for _ in range(n_topics)]
    item_topic = rng.integers(0, n_topics, size=n_items)
    members = [np.flatnonzero(item_topic == t) for t in range(n_topics)]
    # popularity inside a topic: Zipf over a random order, so every topic has a head and a tail
    popularity = [rng.permutation(len(m)) for m in members]
    weights = []
    for t in range(n_topics):
        w = 1.0 / (popularity[t] + 1.0) ** cfg.tail_exponent
        weights.append(w / w.sum())
    position_in_topic = np.zeros(n_items, dtype=np.int64)
    for t in range(n_topics):
        position_in_topic[members[t]] = np.arange(len(members[t]))

    titles = []
    for i in range(n_items):
        t = item_topic[i]
        words = rng.choice(topic_words[t], size=3, replace=False)
        shared = rng.choice(_SHARED)
        titles.append(f"{words[0].capitalize()} {words[1]} {shared} — a {topic_names[t]} {words[2]}")

    users, items, times = [], [], []
    for u in range(cfg.n_users):
        length = max(5, int(rng.geometric(1.0 / cfg.mean_length)))
        length = min(length, 400)
        topic = int(rng.integers(0, n_topics))
        prev = -1
        for step in range(length):
            if rng.random() < cfg.drift:
                topic = (topic + (1 if rng.random() < 0.5 else -1)) % n_topics
            m = members[topic]
            if prev >= 0 and item_topic[prev] == topic and rng.random() < 0.5:
                item = m[(position_in_topic[prev] + 1) % len(m)]
            else:
                item = m[rng.choice(len(m), p=weights[topic])]
            users.append(u)
            items.append(int(item))
            times.append(step)
            prev = int(item)
    interactions = {
        "user_id": np.array([f"u{u}" for u in users], dtype=object),
        "item_id": np.array([f"i{i}" for i in items], dtype=object),
        "timestamp": np.array(times, dtype=np.float64),
        "rating": np.ones(len(users), dtype=np.float64),
    }
    item_table = {
        "item_id": [f"i{i}" for i in range(n_items)],
        "title": titles,
        "topic": [topic_names[t] for t in item_topic],
    }
    return interactions, item_table
