#!/usr/bin/env python3
"""Question pairs from CheckList-style templates (Ribeiro et al. 2020, the QQP suite) that
checklist-dev.tsv has no group for: before/after becoming X, should / should not worry
about, his/her coreference, symmetric and asymmetric relations, comparisons asked the
other way round, active/passive swaps between people, "more X" / "less antonym(X)".
Written from the paper's test descriptions with our own fillers, to check that the
verifier's defences generalise beyond the development set's templates. Writes the TSV
eval-pairs reads to stdout:
    python3 scripts/template-pairs.py > /tmp/tp.tsv && deja eval-pairs /tmp/tp.tsv --thresholds 0.75
"""
import csv
import random
import sys

random.seed(11)
rows = []


def add(cap, test, a, b, dup):
    rows.append((cap, test, a, b, dup))


first_m = ["James", "Robert", "Michael", "David", "Daniel", "Thomas", "Kevin", "Brian", "Omar", "Luis"]
first_f = ["Emma", "Olivia", "Sophia", "Laura", "Rachel", "Nicole", "Hannah", "Fatima", "Mei", "Ana"]
last = ["Smith", "Johnson", "Garcia", "Brown", "Lee", "Walker", "Young", "King", "Wright", "Lopez"]
jobs = ["doctor", "lawyer", "teacher", "nurse", "engineer", "architect", "pilot", "chef", "journalist",
        "accountant", "farmer", "photographer", "dentist", "plumber", "scientist"]
people = lambda: f"{random.choice(first_m + first_f)} {random.choice(last)}"
an = lambda w: ("an " if w[0] in "aeiou" else "a ") + w

for _ in range(60):
    p, j = people(), random.choice(jobs)
    add("Temporal", "life before becoming X != after becoming X",
        f"What was {p}'s life like before becoming {an(j)}?",
        f"What was {p}'s life like after becoming {an(j)}?", 0)

for j in jobs:
    add("Negation", "should worry about != should not worry about",
        f"What are things {an(j)} should worry about?",
        f"What are things {an(j)} should not worry about?", 0)
    add("Negation", "should worry about == things to worry about",
        f"What are things {an(j)} should worry about?",
        f"What things should {an(j)} worry about?", 1)

for _ in range(50):
    m, f = random.choice(first_m), random.choice(first_f)
    t = random.choice([
        "If {m} and {f} were married, would his family be happy?|If {m} and {f} were married, would her family be happy?",
        "If {m} and {f} worked together, would his boss like her?|If {m} and {f} worked together, would her boss like him?",
        "If {m} and {f} were alone, do you think he would trust her?|If {m} and {f} were alone, do you think she would trust him?",
    ])
    a, b = t.format(m=m, f=f).split("|")
    add("Coref", "his / her", a, b, 0)

symmetric = ["married to", "related to", "friends with", "neighbours with", "in a relationship with"]
asymmetric = ["proud of", "jealous of", "afraid of", "older than", "taller than", "in love with",
              "angry at", "the mother of", "the boss of", "richer than"]
for _ in range(50):
    a, b = random.sample(first_m + first_f, 2)
    r = random.choice(symmetric)
    add("SRL", "symmetric relation, order does not matter", f"Is {a} {r} {b}?", f"Is {b} {r} {a}?", 1)
    r = random.choice(asymmetric)
    add("SRL", "asymmetric relation, order matters", f"Is {a} {r} {b}?", f"Is {b} {r} {a}?", 0)

heavy = [("elephants", "mice"), ("trucks", "bicycles"), ("whales", "sharks"), ("tigers", "cats"),
         ("horses", "dogs"), ("bears", "wolves")]
for x, y in heavy:
    for adj in ["heavier", "faster", "stronger", "bigger"]:
        add("SRL", "comparison asked the other way round",
            f"Are {x} {adj} than {y}?", f"What is {adj}, {y} or {x}?", 1)
        add("SRL", "comparison reversed",
            f"Are {x} {adj} than {y}?", f"Are {y} {adj} than {x}?", 0)

verbs = [("love", "loved"), ("help", "helped"), ("hire", "hired"), ("call", "called"),
         ("visit", "visited"), ("blame", "blamed"), ("trust", "trusted"), ("invite", "invited")]
for _ in range(60):
    a, b = random.sample(first_m + first_f, 2)
    v, pp = random.choice(verbs)
    add("SRL", "active / passive swap with people", f"Did {a} {v} {b}?", f"Was {b} {pp} by {a}?", 1)
    add("SRL", "wrong active / passive swap with people", f"Did {a} {v} {b}?", f"Was {a} {pp} by {b}?", 0)

opposites = [("patient", "impatient"), ("confident", "insecure"), ("organized", "disorganized"),
             ("careful", "careless"), ("generous", "selfish"), ("optimistic", "pessimistic"),
             ("honest", "dishonest"), ("calm", "anxious"), ("productive", "unproductive")]
for x, y in opposites:
    add("Vocabulary", "more X == less antonym(X)", f"How can I become more {x}?", f"How can I become less {y}?", 1)
    add("Vocabulary", "more X != more antonym(X)", f"How can I become more {x}?", f"How can I become more {y}?", 0)

# added 2026-12-07 (afternoon), before their first run: four more of the QQP suite's tests
groups = ["conservatives", "economists", "historians", "doctors", "teenagers", "critics"]
superlatives = ["the best president", "the greatest athlete of all time", "the most talented actor",
                "the funniest comedian", "the most important inventor", "the worst villain in film"]
for g in groups:
    for x in random.sample(superlatives, 4):
        add("SRL", "who do X think is Y == who is Y according to X",
            f"Who do {g} think is {x}?", f"Who is {x} according to {g}?", 1)

adverbs = ["actually", "really", "truly", "in fact", "indeed", "literally"]
for _ in range(30):
    p, j = people(), random.choice(jobs)
    add("Vocabulary", "irrelevant modifiers - people",
        f"Is {p} {an(j)}?", f"Is {p} {random.choice(adverbs)} {an(j)}?", 1)

adjectives = ["honest", "ambitious", "successful", "famous", "lazy", "creative", "wealthy",
              "experienced", "friendly", "strict"]
for _ in range(30):
    p, j = people(), random.choice(jobs)
    x, y = random.sample(adjectives, 2)
    add("NER", "different adjectives, same people",
        f"Is {p} {an(x)} {j}?", f"Is {p} {an(y)} {j}?", 0)

job_synonyms = [("doctor", "physician"), ("lawyer", "attorney"), ("teacher", "educator"),
                ("chef", "cook"), ("journalist", "reporter"), ("pilot", "aviator")]
for x, y in job_synonyms:
    for _ in range(3):
        p = people()
        add("Taxonomy", "is person X == is person synonym(X)", f"Is {p} {an(x)}?", f"Is {p} {an(y)}?", 1)

w = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
w.writerow(["capability", "test", "q1", "q2", "duplicate"])
for r in rows:
    w.writerow(r)
