#!/usr/bin/env python3
"""Hand-written question pairs in categories checklist-dev.tsv lacks (changed location,
name, number or occupation; typos, contractions, punctuation; comparison swaps; is/was;
antonyms WordNet does not pair directly). Writes the TSV eval-pairs reads to stdout:
    python3 scripts/probe-pairs.py > /tmp/probe.tsv && deja eval-pairs /tmp/probe.tsv --thresholds 0.75
"""
import csv
import random
import sys
random.seed(7)
rows=[]
def add(cap,test,a,b,d): rows.append((cap,test,a,b,d))
places=["Canada","France","Japan","Brazil","Germany","India","Mexico","Italy","Spain","Kenya"]
for i in range(40):
    p,q=random.sample(places,2)
    t=random.choice(["How do I get a work visa in {}?","What is the best time to visit {}?","How much does it cost to live in {}?","Can I drive with a US license in {}?","What are the tax rules for freelancers in {}?"])
    add("NER","change location",t.format(p),t.format(q),0)
names=["John","Mary","Ahmed","Priya","Carlos","Yuki","Olga","Kwame"]
for i in range(30):
    p,q=random.sample(names,2)
    t=random.choice(["Why did {} leave the company?","How old is {} Smith?","What did {} say about the merger?","Is {} married?"])
    add("NER","change name",t.format(p),t.format(q),0)
for i in range(40):
    a,b=random.sample(range(2,60),2)
    t=random.choice(["Is it safe to take {} mg of melatonin?","How do I lose {} pounds in a month?","What happens if I miss {} payments on my loan?","Can I withdraw {} dollars from an ATM abroad?","Is {} hours of sleep enough?"])
    add("Numbers","change number",t.format(a),t.format(b),0)
typos=[("How do I reset my password?","How do I rset my pasword?"),("What is the refund policy for damaged items?","What is the refund polcy for damagd items?"),("How can I track my order?","How can I trak my ordr?"),("Why was my card declined?","Why was my crad declined?"),("How do I change my shipping address?","How do I chnage my shipping adress?"),("Can I cancel my subscription anytime?","Can I cancle my subscription anytime?")]
for a,b in typos: add("Robust","typos",a,b,1)
contr=[("What is the fastest way to learn Python?","What's the fastest way to learn Python?"),("I cannot log into my account, what should I do?","I can't log into my account, what should I do?"),("Why does it not let me pay?","Why doesn't it let me pay?"),("Where is my package?","Where's my package?"),("They are charging me twice, how do I fix it?","They're charging me twice, how do I fix it?")]
for a,b in contr: add("Robust","contractions",a,b,1)
punct=[("How do I open a savings account","How do I open a savings account?"),("what is the interest rate on savings?","What is the interest rate on savings"),("Can I pay with PayPal?!","can I pay with paypal")]
for a,b in punct: add("Robust","punctuation",a,b,1)
used=[("Is Obama a lawyer?","Was Obama a lawyer?"),("Is she a teacher?","Was she a teacher?"),("Is Tom a smoker?","Used Tom to be a smoker?"),("Is the store open on Sunday?","Was the store open on Sunday?")]
for a,b in used: add("Temporal","is vs was",a,b,0)
comp=[("Is a Honda more reliable than a Ford?","Is a Ford more reliable than a Honda?"),("Is coffee healthier than tea?","Is tea healthier than coffee?"),("Is Python faster than Java?","Is Java faster than Python?"),("Is renting cheaper than buying?","Is buying cheaper than renting?")]
for a,b in comp: add("SRL","comparison swap",a,b,0)
ant=[("How do I make my coffee stronger?","How do I make my coffee weaker?"),("Why is my phone battery draining fast?","Why is my phone battery draining slowly?"),("How do I increase my credit limit?","How do I decrease my credit limit?"),("How to make a room warmer?","How to make a room colder?"),("What foods raise blood pressure?","What foods lower blood pressure?")]
for a,b in ant: add("Vocabulary","antonym",a,b,0)
para=[("How do I cancel my order?","I want to cancel my order, how do I do that?"),("What are your opening hours?","When are you open?"),("How can I get a refund?","How do I request a refund?"),("How do I change my PIN?","How can I change my card PIN?"),("Is there a fee for international transfers?","Do you charge for transferring money abroad?"),("My card was stolen, what do I do?","What should I do if my card is stolen?")]
for a,b in para: add("Paraphrase","support paraphrase",a,b,1)
occ=[("How do I become a nurse?","How do I become a doctor?"),("What does a pilot earn?","What does a plumber earn?"),("How many hours does a teacher work?","How many hours does a lawyer work?")]
for a,b in occ: add("NER","different occupation",a,b,0)
w = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
w.writerow(["capability", "test", "q1", "q2", "duplicate"])
w.writerows(rows)
