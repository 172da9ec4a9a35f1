"""A deterministic caption corpus that exercises every corner of PTB tokenization.

`tricky_captions()` are hand-written cases; `generated_captions()` crosses sentence templates with a
vocabulary of ordinary and awkward words and a list of punctuation treatments, so every case meets every
other in many contexts. The order matters (pycocoevalcap's lexer looks from one caption into the next),
so the corpus is one fixed list and both tokenizers see it in that order.

Excluded on purpose: the line breaks other than "\\n" (\\r, \\v, \\f, U+2028, U+2029), which make
pycocoevalcap's Java tokenizer return extra lines (see vlkit.metrics.tokenize); they are tested apart.
"""

from __future__ import annotations

import random

TRICKY = [
    # contractions and possessives
    "I don't know, I can't say, I won't go and I'm sure they're right: it's fine.",
    "'Tis the season; 'twas the night. tis twas 'tis 'Twas",
    "The dog's bone and the dogs' bones; James's car, the boss' desk.",
    "He'll, she'd, we've, you're, it'd, ain't, isn't, wouldn't, shouldn't've, y'all, ma'am, o'clock.",
    "DON'T CAN'T WON'T I'M THEY'RE IT'S",
    "rock'n'roll and rock 'n' roll, the '90s and 90's, '99 and 1990s",
    "d'Artagnan l'amour O'Brien o'Reilly Ol' Man Somethin' Dunkin' c'mon cont'd nor'easter e'er",
    # quotes
    "A sign that says \"STOP\" and another saying 'slow'.",
    '"Hello," she said. "Bye."',
    "a sign reading \u201cno parking\u201d and \u2018one way\u2019 arrows",
    "``quoted'' and `single' text",
    "\u00abguillemets\u00bb and \u2039single\u203a, \u201elow\u201c quotes \u201a here",
    "'' '' ` ` \"\" \"",
    "It\u2019s the man\u2019s hat",
    "the ``best'' pizza",
    "She said: \"it's 'fine'\".",
    # hyphens, dashes, slashes
    "A well-known state-of-the-art T-shirt, an x-ray and an e-mail.",
    "a man -- or a woman --- or - a child",
    "ten to twenty\u2014thirty \u2013 forty \u2015 fifty \u2010 sixty \u2011 seventy \u2012 eighty",
    "and/or he/she a/b/c/d 24/7 w/ w/o 1/2/3/4",
    "pro- and anti- war, co-op, re-enter, -LRB- -RRB-",
    "a---b a--b a - b ---- ----- -",
    # numbers
    "It costs $1,000.50 or 1,000.5 euros, 3/4 of 10% and 5 3/4 cups, 1 1/2 hours.",
    "At 12:30 on 11/22/2014 (or 22-11-2014) call 555-1234 or (555) 555-1234 or 555 555 5555.",
    "Scores of 3-2, 2nd place, 1st, 10th, 100m, 5kg, 3.5mm, .5, -5, +5, 5-, 1.5-2, 1990-12-31.",
    "\u00bd cup, \u00bc mile, \u00be full, \u2153 and \u2154, \u2155 \u215e",
    "\u00a35, \u20ac4, \u00a210, \u00a57, 5$, US$5, #1",
    "x\u00b2 and H\u2082O at 20\u00b0C, 5\u00d73, 10\u00f72, 50\u2030",
    # ellipses
    "Wait... what? Well.. ok. And.... then..... end. . . and . . . .",
    "The end\u2026 or \u2026not, x\u2026y",
    "a... The",
    "a.... the",
    "Really?! No!! Why??? ?!",
    # brackets
    "A man (in a red shirt) [left] {right} <center>.",
    "(a) (b) [c] {d} <e> ((nested))",
    '<b>bold</b> <a href="x">link</a> <br/> <!-- comment --> <a b=c> x < y > z',
    # abbreviations and acronyms
    "Mr. Smith and Mrs. Jones met Dr. Who at St. Paul's in the U.S. Army, etc.",
    "The U.S. The U.S.A. e.g. i.e. a.m. p.m. vs. Inc. Co. Ltd. Corp. Jan. Feb. Sept.",
    "No. 5 and no. 6, No. you, fig. 3, pp. 12, ca. 1900, art. 2, Nos. 1",
    "I. The end. a. The start. A. B. C. x.y.z. Z. Dog",
    "plan b.",
    "The end.",
    "a St. Louis Cardinals fan in the Calif. sun with Gen. Patton",
    "Inc.k Co.R Jan.M etc.n't Mr.k",
    # unicode letters and symbols, emoji
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 Zo\u00eb \u00fcber fa\u00e7ade jalape\u00f1o",
    "\u0130stanbul stra\u00dfe",
    "cafe\u0301 with a combining accent",
    "Greek \u0395\u039b\u039b\u0391\u03a3 and \u039f\u0394\u039f\u03a3 and \u03a3\u03a3",
    "Russian \u041c\u043e\u0441\u043a\u0432\u0430, Japanese \u6771\u4eac\u30bf\u30ef\u30fc,",
    "Korean \u1112\u1161\u11ab",
    "A dog \U0001f436 with a ball \u26bd and a heart \u2764 \U0001f600\U0001f600",
    "pizza\U0001f355slice",
    "\u00a9 2014 \u00ae \u2122 \u00a7 \u00b6 \u2022 \u00b7 \u2020 \u2192 \u2190 \u221e \u2248",
    "zero\u200bwidth and soft\u00adhyphen and BOM\ufeff",
    "\u00ad",
    "\u00ad\u00ad \u00ad",
    "control\x01chars\x1cand\x7fdelete",
    "mailto:a@b.com, john@x.com, <john@x.com>, @user and #hashtag",
    "http://example.com/a?b=c. www.google.com and google.com, HTTP://X.ORG",
    "C++ and C# and F#",
    "smileys :) :( :D ;) :-P =) ^_^ (^_^) -_- x_x <3",
    "image.jpg photo.JPG file.pdf, 1.c a.docx",
    "AT&T and S&P-500 and R&D &amp; &lt; &gt; &quot; &apos; &nbsp; &mdash; &eacute; &#39;",
    "cannot gonna wanna gotta lemme gimme Cannot GONNA",
    "dunno whaddya gotcha more'n",
    # white space
    "  leading and trailing spaces  ",
    "two  spaces   and   three",
    "tabs\tinside\t\tthe caption",
    "a new\nline inside",
    "non\u00a0breaking\u2009thin\u3000ideographic spaces",
    "\t",
    "",
    # captions that tokenize to nothing
    ".",
    "...",
    "!!!",
    ", ; :",
    "--",
    "''",
    "( )",
    "\u2026",
]

_SUBJECTS = [
    "a man",
    "A woman",
    "the dog",
    "Two kids",
    "an old lady",
    "The U.S. team",
    "some people",
    "a skier",
    "the cat's owner",
    "Mr. Smith",
    "a T-shirt vendor",
    "three\u00a0birds",
    "caf\u00e9 staff",
    "I",
    "they",
    "The 1990s band",
    "an x-ray tech",
    "a so-called expert",
    "O'Brien",
]
_VERBS = [
    "is riding",
    "rides",
    "can't ride",
    "won't eat",
    "is holding",
    "holds",
    "'s holding",
    "sits on",
    "stands near",
    "looks at",
    "plays with",
    "is throwing",
    "throws",
    "carries",
    "walks past",
]
_OBJECTS = [
    "a horse",
    "the frisbee",
    "a pizza slice",
    "their kids' toys",
    "a 3/4 full glass",
    "the 'new' bike",
    'a "red" kite',
    "the U.S.A. flag",
    "a skateboard (blue)",
    "an e-mail",
    "10% of the cake",
    "$5 worth of food",
    "a sign reading STOP",
    "the dog\u2019s bone",
    "\u00bd a sandwich",
    "it",
    "a \u201cbig\u201d cake",
    "the etc. box",
    "No. 5",
    "a 5-year-old",
    "the tv/radio",
]
_TAILS = [
    "",
    " in the park",
    " near the St. Louis arch",
    ", while smiling",
    " -- really",
    " (again)",
    " at 12:30",
    " on 11/22/2014",
    " with 1,000 people",
    " and friends",
    "... wow",
    " :)",
    " in Calif.",
]
_ENDINGS = ["", ".", " .", "!", "?", "...", "\u2026", '."', ".'", "?!", ". ", " !", ".)", "\u201d.", " ;"]


def tricky_captions() -> list[str]:
    return list(TRICKY)


def generated_captions(count: int = 2400, seed: int = 0) -> list[str]:
    """Templates x vocabulary x punctuation, `count` of them, the same for a seed."""
    rng = random.Random(seed)
    captions = []
    for index in range(count):
        subject, verb, obj = rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS)
        text = f"{subject} {verb} {obj}{rng.choice(_TAILS)}{_ENDINGS[index % len(_ENDINGS)]}"
        if index % 7 == 0:
            text = text.upper()
        elif index % 5 == 0:
            text = text.lower()
        if index % 11 == 0:
            text = text.replace(" ", "  ", 1)
        if index % 13 == 0:
            text = "\t" + text
        captions.append(text)
    return captions


def corpus() -> list[str]:
    """The tricky captions, each followed by a few generated ones, so they meet many neighbours."""
    generated = generated_captions()
    captions: list[str] = []
    for index, tricky in enumerate(tricky_captions()):
        captions.append(tricky)
        captions.extend(generated[index * 20 : index * 20 + 20])
    captions.extend(generated[len(TRICKY) * 20 :])
    return captions
