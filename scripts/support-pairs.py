#!/usr/bin/env python3
"""Question pairs shaped like support traffic, deja's main workload: short "how do I
<verb> my <thing>" questions. Written 2026-12-07 with verbs, things and wordings chosen
before any run, to check the verifier on the pairs a support FAQ cache meets:
- the same thing, another action ("cancel" / "pause my subscription"): different;
- the same action, another thing ("reset my password" / "reset my PIN"): different;
- another order or ticket number: different; "can" / "can't": different;
- the same question reworded (synonym verbs, "I want to", "what are the steps to",
  a greeting or an expletive in front, run-together words): the same.
Writes the TSV eval-pairs reads to stdout:
    python3 scripts/support-pairs.py > /tmp/sp.tsv && deja eval-pairs /tmp/sp.tsv --thresholds 0.75
"""
import csv
import random
import sys

random.seed(23)
rows = []


def add(test, a, b, dup):
    rows.append(("Support", test, a, b, dup))


# things, and the actions that apply to each; actions in one tuple are one action
things = {
    "subscription": [("cancel",), ("pause",), ("renew",), ("upgrade",), ("downgrade",)],
    "order": [("cancel",), ("track",), ("return",), ("change", "modify")],
    "account": [("delete", "remove"), ("verify",), ("unlock",), ("create", "open")],
    "password": [("reset",), ("change", "update")],
    "card": [("activate",), ("freeze",), ("replace",)],
    "booking": [("cancel",), ("change", "modify"), ("confirm",)],
    "payment": [("dispute",), ("refund",), ("schedule",)],
    "email address": [("change", "update"), ("verify",)],
}
same_action_things = [
    ("reset", "password", "PIN"),
    ("cancel", "order", "subscription"),
    ("change", "email address", "phone number"),
    ("update", "billing address", "shipping address"),
    ("track", "order", "refund"),
    ("verify", "email address", "identity"),
    ("download", "invoice", "receipt"),
    ("activate", "card", "account"),
]
frames = [
    "How do I {v} my {t}?",
    "how can i {v} my {t}",
    "Can I {v} my {t} online?",
    "What is the fastest way to {v} my {t}?",
]
reworded = [
    "I want to {v} my {t}, how do I do it?",
    "what are the steps to {v} my {t}",
    "Hi there, how do I {v} my {t}?",
    "how do i {v} my damn {t}",
    "Could you tell me how to {v} my {t}?",
    "help me {v} my {t} please",
]

for t, actions in things.items():
    for i, a in enumerate(actions):
        for b in actions[i + 1:]:
            f = random.choice(frames)
            add("same thing, another action", f.format(v=a[0], t=t), f.format(v=b[0], t=t), 0)
        f, g = random.choice(frames), random.choice(reworded)
        add("same question reworded", f.format(v=a[0], t=t), g.format(v=a[0], t=t), 1)
        if len(a) > 1:
            f = random.choice(frames)
            add("synonym verb", f.format(v=a[0], t=t), f.format(v=a[1], t=t), 1)

for v, x, y in same_action_things:
    f = random.choice(frames)
    add("same action, another thing", f.format(v=v, t=x), f.format(v=v, t=y), 0)
    g = random.choice(reworded)
    add("same question reworded", f.format(v=v, t=x), g.format(v=v, t=x), 1)

for _ in range(12):
    n1, n2 = random.sample(range(10000, 99999), 2)
    v = random.choice(["cancel", "track", "return"])
    add("another order number", f"How do I {v} order {n1}?", f"How do I {v} order {n2}?", 0)
    add("same order number reworded", f"How do I {v} order {n1}?", f"I need help to {v} order {n1}", 1)

for v, t in [("log in to", "account"), ("pay with", "card"), ("change", "plan"), ("use", "coupon"),
             ("cancel", "subscription"), ("reach", "support team")]:
    add("can / can't", f"I can {v} my {t}, is that normal?", f"I can't {v} my {t}, is that normal?", 0)

for a, b in [("I need to cancel my order", "I need tocancel my order"),
             ("how do I reset my password", "how do I reset mypassword"),
             ("where can I see my account", "where can I see myaccount"),
             ("I want to return the order", "I want to return theorder"),
             ("how to reset my PIN", "how toreset my PIN")]:
    add("words run together", a, b, 1)

w = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
w.writerow(["capability", "test", "q1", "q2", "duplicate"])
for r in rows:
    w.writerow(r)
