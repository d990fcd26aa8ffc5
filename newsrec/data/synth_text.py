"""Entities and article text of the synthetic MIND generator.

Entities come in storylines (clusters): an anchor (a team, a company, a show) and
its members (players, executives, cast), all tied to one topic. Their 100-d vectors
are built TransE-style, `member = anchor + relation + noise` and
`anchor = topic centre + cluster offset + noise`, so the geometry of
entity_embedding.vec reflects topic and storyline structure.

Article text fills topic-specific templates; every entity mention is recorded with
its character offset into the title or abstract, as MIND's `OccurrenceOffsets`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

from newsrec.data import synth_vocab as V

ENTITY_DIM = 100
LAST_NAMES_PER_TOPIC = 12
NEW_ENTITY_SHARE = 0.3  # members that debut late
NEW_ENTITY_FOCUS = 0.6  # chance that an article names a member new in the last 2 days

_PATTERNS: dict[str, tuple[str, ...]] = {
    "person": ("{first} {last}",),
    "celebrity": ("{first} {last}",),
    "city": ("{place}",),
    "agency": ("{place} City Council", "{place} Police Department", "{place} School Board"),
    "team": ("{place} {mascot}",),
    "stadium": ("{stem} Field", "{stem} Arena", "{last} Stadium"),
    "company": ("{stem} {corp}",),
    "product": ("{stem} {word}",),
    "restaurant": ("{last}'s Kitchen", "{last}'s Bistro", "The {word} Tavern", "{word} Bakery"),
    "dish": ("{last}'s {dish}",),
    "house": ("House of {last}", "{last} Family Foundation"),
    "brand": ("{stem} & {last}", "{last} Atelier"),
    "destination": ("{place} Island", "Lake {place}", "{place} Valley"),
    "hotel": ("The {word} Hotel", "{stem} Resort", "{place} Grand Hotel"),
    "landmark": ("{word} Falls", "{last} Lighthouse", "{word} Canyon Trail"),
    "airline": ("{stem} Air", "{word} Airways", "{place} Airlines"),
    "automaker": ("{stem} Motors",),
    "vehicle": ("{stem} {word}",),
    "hospital": ("{place} Medical Center", "{last} Clinic"),
    "drug": ("{drug}",),
    "show": ("The {word} Files", "{word} Heights", "The {word} Hour", "{word} House"),
    "network": ("{stem} TV", "{word} Network", "{place} Public TV"),
    "band": ("The {word} {mascot}",),
    "album": ("{word} {word2}", "Songs of {word}"),
    "film": ("{word} Rising", "The {word} Protocol", "{word} Road", "{word} Legacy"),
    "studio": ("{stem} Pictures", "{word} Films", "{last} Studios"),
    "storm": ("Hurricane {first}", "Tropical Storm {first}", "Winter Storm {first}"),
    "region": ("{place} County", "{place} Valley", "{place} Coast", "North {place}", "{place} Highlands"),
    "channel": ("{word} Clips", "{stem} Video"),
    "animal": ("{first} the {animal}",),
    "event": ("{stem} Awards", "{word} Music Festival", "{place} Gala"),
    "kidshow": ("{word} Explorers", "{word} Academy", "{word} Adventures"),
    "character": (
        "Captain {word}",
        "Professor {word}",
        "Little {word}",
        "Sir {word}",
        "Princess {word}",
        "Doctor {word}",
    ),
}
_DRUG_SUFFIXES = ("zumab", "vir", "tinib", "pril", "statin", "mycin")
# Which relation of relation_embedding.vec links a member of this kind to its anchor.
_RELATION_OF_KIND = {
    "person": "P108",
    "stadium": "P131",
    "product": "P176",
    "vehicle": "P176",
    "album": "P175",
    "landmark": "P131",
    "region": "P131",
    "hotel": "P131",
    "network": "P361",
    "studio": "P361",
    "character": "P161",
}
_SLOT = re.compile(r"\{(\w+)\}")


@dataclass(slots=True)
class SynthEntity:
    """One generated entity; `cluster` is a global storyline index."""

    wikidata_id: str
    label: str
    type: str
    topic: int
    cluster: int
    is_anchor: bool
    last_name: str = ""  # persons: the short surface form used in some abstracts
    debut: float = -np.inf  # hour from which articles can mention it (new signings, new products)


@dataclass(slots=True)
class Catalogue:
    """All entities, grouped by storyline, with their vectors."""

    entities: list[SynthEntity]
    cluster_topic: np.ndarray  # cluster -> topic
    cluster_members: list[list[int]]  # cluster -> entity indices, anchor first
    cluster_subcat: list[str]
    topic_clusters: list[list[int]]  # topic -> cluster indices
    entity_vectors: np.ndarray  # (n_entities, 100) float32
    relation_ids: list[str]
    relation_vectors: np.ndarray


def _name(kind: str, rng: np.random.Generator, used: set[str], lasts: tuple[str, ...]) -> str:
    pats = _PATTERNS[kind]
    for _ in range(200):
        pat = pats[int(rng.integers(len(pats)))]
        name = pat.format(
            first=V.FIRST[int(rng.integers(len(V.FIRST)))],
            last=lasts[int(rng.integers(len(lasts)))],
            place=V.PLACE[int(rng.integers(len(V.PLACE)))],
            mascot=V.MASCOT[int(rng.integers(len(V.MASCOT)))],
            stem=V.STEM[int(rng.integers(len(V.STEM)))],
            corp=V.CORP[int(rng.integers(len(V.CORP)))],
            word=V.WORD[int(rng.integers(len(V.WORD)))],
            word2=V.WORD[int(rng.integers(len(V.WORD)))] + "s",
            dish=V.DISH[int(rng.integers(len(V.DISH)))],
            animal=V.ANIMAL[int(rng.integers(len(V.ANIMAL)))],
            drug=V.STEM[int(rng.integers(len(V.STEM)))][:4]
            + _DRUG_SUFFIXES[int(rng.integers(len(_DRUG_SUFFIXES)))],
        )
        if name not in used:
            used.add(name)
            return name
    raise RuntimeError(f"name pool of kind {kind!r} exhausted; lower clusters_per_topic")


def build_catalogue(
    rng: np.random.Generator,
    clusters_per_topic: int,
    members: int,
    new_from_hour: float = 5 * 24,
    new_to_hour: float = 7 * 24,
) -> Catalogue:
    """Make `clusters_per_topic` storylines per topic, each an anchor plus `members` members."""
    used: set[str] = set()
    qids = rng.choice(
        np.arange(10_000, 9_999_999), size=len(V.TOPICS) * clusters_per_topic * (members + 1), replace=False
    )
    rel_ids = [r for r, _ in V.RELATIONS]
    rel_vecs = _unit(rng.standard_normal((len(rel_ids), ENTITY_DIM))) * 0.5
    rel_index = {r: i for i, r in enumerate(rel_ids)}
    entities: list[SynthEntity] = []
    vecs: list[np.ndarray] = []
    cluster_topic: list[int] = []
    cluster_members: list[list[int]] = []
    cluster_subcat: list[str] = []
    topic_clusters: list[list[int]] = []
    for t, topic in enumerate(V.TOPICS):
        centre = _unit(rng.standard_normal(ENTITY_DIM))
        # Few last names per topic: "Vasquez" alone is ambiguous across storylines, as
        # in real news; the WikidataId in the entity column is not.
        lasts = tuple(
            V.LAST[i] for i in sorted(rng.choice(len(V.LAST), size=LAST_NAMES_PER_TOPIC, replace=False))
        )
        topic_clusters.append([])
        for k in range(clusters_per_topic):
            c = len(cluster_topic)
            cluster_topic.append(t)
            topic_clusters[t].append(c)
            cluster_subcat.append(topic.subcategories[k % len(topic.subcategories)])
            offset = _unit(rng.standard_normal(ENTITY_DIM)) * 0.8
            anchor_vec = centre + offset + rng.standard_normal(ENTITY_DIM) * 0.02
            idx = []
            kinds = [(topic.anchor, True)] + [
                (topic.members[m % len(topic.members)], False) for m in range(members)
            ]
            # Some members appear only late (the last train day or the dev day), so cold-start
            # articles name entities no train text ever named; their vectors still sit
            # by their storyline, which is where the knowledge graph beats the text.
            late = rng.random(len(kinds)) < NEW_ENTITY_SHARE
            late[:3] = False  # the anchor and two members are always there
            hours = rng.uniform(new_from_hour, new_to_hour, size=len(kinds))
            debuts = [float(h) if is_late else -np.inf for h, is_late in zip(hours, late, strict=True)]
            for (kind, etype), is_anchor in kinds:
                label = _name(kind, rng, used, lasts)
                rel = (
                    "P54"
                    if topic.category == "sports" and kind == "person"
                    else _RELATION_OF_KIND.get(kind, "P361")
                )
                vec = (
                    anchor_vec
                    if is_anchor
                    else anchor_vec + rel_vecs[rel_index[rel]] + rng.standard_normal(ENTITY_DIM) * 0.03
                )
                last = label.split(" ")[-1] if kind in ("person", "celebrity") else ""
                idx.append(len(entities))
                entities.append(
                    SynthEntity(
                        f"Q{int(qids[len(entities)])}",
                        label,
                        etype,
                        t,
                        c,
                        is_anchor,
                        last,
                        debut=debuts[len(idx) - 1],
                    )
                )
                vecs.append(vec)
            cluster_members.append(idx)
    return Catalogue(
        entities=entities,
        cluster_topic=np.array(cluster_topic, dtype=np.int64),
        cluster_members=cluster_members,
        cluster_subcat=cluster_subcat,
        topic_clusters=topic_clusters,
        entity_vectors=np.asarray(vecs, dtype=np.float32),
        relation_ids=rel_ids,
        relation_vectors=rel_vecs.astype(np.float32),
    )


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class _Mentions:
    """Entity mentions of one field, in MIND's JSON shape."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, object]] = {}

    def add(self, ent: SynthEntity, offset: int, form: str, confidence: float) -> None:
        item = self.items.get(ent.wikidata_id)
        if item is None:
            item = {
                "Label": ent.label,
                "Type": ent.type,
                "WikidataId": ent.wikidata_id,
                "Confidence": confidence,
                "OccurrenceOffsets": [],
                "SurfaceForms": [],
            }
            self.items[ent.wikidata_id] = item
        item["OccurrenceOffsets"].append(offset)  # type: ignore[attr-defined]
        item["SurfaceForms"].append(form)  # type: ignore[attr-defined]

    def json(self) -> str:
        return json.dumps(list(self.items.values())) if self.items else "[]"


def fill(
    template: str,
    words: dict[str, str],
    ents: dict[str, tuple[SynthEntity, str]],
    mentions: _Mentions,
    confidence: float,
) -> str:
    """Fill a template; entity slots are recorded in `mentions` at their character offsets."""
    out: list[str] = []
    length = 0
    pos = 0
    for m in _SLOT.finditer(template):
        lit = template[pos : m.start()]
        pos = m.end()
        slot = m.group(1)
        value = ents[slot][1] if slot in ents else words[slot]
        if (lit.lower() == "a " or lit.endswith(" a ")) and value[:1].lower() in "aeiou":
            lit = lit[:-2] + ("An " if lit[-2] == "A" else "an ")
        out.append(lit)
        length += len(lit)
        if slot in ents:
            mentions.add(ents[slot][0], length, value, confidence)
        out.append(value)
        length += len(value)
    out.append(template[pos:])
    text = "".join(out)
    return text[:1].upper() + text[1:]


def article_text(
    rng: np.random.Generator,
    topic_idx: int,
    cluster: int,
    cat: Catalogue,
    cross_cluster: bool,
    empty_abstract: bool,
    pub_hour: float = np.inf,
) -> tuple[str, str, str, str, list[str]]:
    """(title, abstract, title_entities JSON, abstract_entities JSON, entity ids) of one article.

    `cluster < 0` makes an article without entities.
    """
    topic = V.TOPICS[topic_idx]

    def pick(seq: tuple[str, ...]) -> str:
        return seq[int(rng.integers(len(seq)))]

    words = {
        "N": pick(topic.nouns),
        "N2": pick(topic.nouns),
        "V": pick(topic.verbs),
        "A": pick(topic.adjectives),
        "T": pick(topic.tails),
    }
    conf = round(float(rng.uniform(0.9, 1.0)), 3)
    title_m, abs_m = _Mentions(), _Mentions()
    if cluster < 0:
        title = fill(pick(V.TITLE_TEMPLATES_NO_ENTITY), words, {}, title_m, conf)
        abstract = (
            "" if empty_abstract else fill(pick(V.ABSTRACT_TEMPLATES_NO_ENTITY), words, {}, abs_m, conf)
        )
        return title, abstract, "[]", "[]", []
    ents = cat.entities
    members = [i for i in cat.cluster_members[cluster] if ents[i].debut <= pub_hour]
    fresh = [i for i in members if ents[i].debut > pub_hour - 48]
    # News is about what is new; else the anchor is mentioned more often than any one
    # member, as a team is more than a player.
    if fresh and rng.random() < NEW_ENTITY_FOCUS:
        e = fresh[int(rng.integers(len(fresh)))]
    elif rng.random() < 0.2:
        e = members[0]
    else:
        e = members[1 + int(rng.integers(len(members) - 1))]
    if cross_cluster:
        others = cat.topic_clusters[topic_idx]
        other = others[int(rng.integers(len(others)))]
        pool = [i for i in cat.cluster_members[other] if i != e and ents[i].debut <= pub_hour]
    else:
        pool = [i for i in members if i != e]
    f = pool[int(rng.integers(len(pool)))]
    ent_e, ent_f = cat.entities[e], cat.entities[f]
    title = fill(
        pick(V.TITLE_TEMPLATES), words, {"E": (ent_e, ent_e.label), "F": (ent_f, ent_f.label)}, title_m, conf
    )
    if empty_abstract:
        return title, "", title_m.json(), "[]", list(title_m.items)
    words2 = dict(words, V=pick(topic.verbs), A=pick(topic.adjectives))
    # A person named in the title is often called by the last name in the abstract.
    form_e = ent_e.last_name if ent_e.last_name and rng.random() < 0.6 else ent_e.label
    form_f = ent_f.last_name if ent_f.last_name and rng.random() < 0.5 else ent_f.label
    abstract = fill(
        pick(V.ABSTRACT_TEMPLATES), words2, {"E": (ent_e, form_e), "F": (ent_f, form_f)}, abs_m, conf
    )
    return title, abstract, title_m.json(), abs_m.json(), list(dict.fromkeys([*title_m.items, *abs_m.items]))
