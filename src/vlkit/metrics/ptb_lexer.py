"""The lexer inside Stanford CoreNLP 3.4.1's PTBTokenizer, rebuilt with Python regexes.

pycocoevalcap tokenizes every caption with that Java lexer (a JFlex scanner) before it scores; vlkit's
CIDEr must see the same tokens without Java. JFlex scans by *longest match*: at each position every rule
is tried, the longest match wins (a trailing context `r1/r2` counts with its length), and ties go to the
rule written first. `lex` does exactly that over the rule list below, which follows the order and the
macros of CoreNLP's `PTBLexer.flex` with the options PTBTokenizer's command line uses (ptb3Escaping on,
americanize off, untokenizable characters deleted). Python's `re` does not do longest-match alternation,
so a rule that needs it is given as several alternatives and the longest one is kept.

The rules were rebuilt from the versions of PTBLexer.flex before and after 3.4.1 and settled one by one
against the 3.4.1 jar that pycocoevalcap ships (abbreviation lists, SGML, e-mail, file names, smileys,
which quotes join words...); the tests compare the two on thousands of captions. The character classes
(`[:letter:]`, `[:digit:]`, the extra word characters, the stand-alone symbols) come from the Unicode
tables of the Java that built the jar, not from Python's newer ones: they were read off by running the jar
on every BMP character (the ranges of hex code points below). A character outside the BMP is two UTF-16
units to Java, untokenizable ones, so it is deleted (but kept inside a URL or an e-mail address).

Known approximation, far from caption text: case-insensitive literals use Python's case folding, which
also matches a few exotic letters to ASCII ones (long s, Kelvin sign) where JFlex would not.

This is the slow, exact path; `vlkit.metrics.tokenize` remembers its result per chunk of text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass


def _char_class(ranges: str) -> str:
    """'aa c0-d6' -> the body of a regex character class for those code points."""
    parts = []
    for item in ranges.split():
        low, _, high = item.partition("-")
        parts.append(re.escape(chr(int(low, 16))) + (f"-{re.escape(chr(int(high, 16)))}" if high else ""))
    return "".join(parts)


# Java's Character.isLetter in the jar (U+0080 and up), its isDigit, and the extra characters that its
# WORD macro accepts (combining marks and the like).
_LETTER_RANGES = """
aa b5 ba c0-d6 d8-f6 f8-2c1 2c6-2d1 2e0-2e4 2ec 2ee 370-374 376-377 37a-37d 386 388-38a 38c 38e-3a1
3a3-3f5 3f7-481 48a-527 531-556 559 561-587 5d0-5ea 5f0-5f2 620-64a 66e-66f 671-6d3 6d5 6e5-6e6 6ee-6ef
6fa-6fc 6ff 710 712-72f 74d-7a5 7b1 7ca-7ea 7f4-7f5 7fa 800-815 81a 824 828 840-858 8a0 8a2-8ac 904-939
93d 950 958-961 971-977 979-97f 985-98c 98f-990 993-9a8 9aa-9b0 9b2 9b6-9b9 9bd 9ce 9dc-9dd 9df-9e1
9f0-9f1 a05-a0a a0f-a10 a13-a28 a2a-a30 a32-a33 a35-a36 a38-a39 a59-a5c a5e a72-a74 a85-a8d a8f-a91
a93-aa8 aaa-ab0 ab2-ab3 ab5-ab9 abd ad0 ae0-ae1 b05-b0c b0f-b10 b13-b28 b2a-b30 b32-b33 b35-b39 b3d
b5c-b5d b5f-b61 b71 b83 b85-b8a b8e-b90 b92-b95 b99-b9a b9c b9e-b9f ba3-ba4 ba8-baa bae-bb9 bd0 c05-c0c
c0e-c10 c12-c28 c2a-c33 c35-c39 c3d c58-c59 c60-c61 c85-c8c c8e-c90 c92-ca8 caa-cb3 cb5-cb9 cbd cde
ce0-ce1 cf1-cf2 d05-d0c d0e-d10 d12-d3a d3d d4e d60-d61 d7a-d7f d85-d96 d9a-db1 db3-dbb dbd dc0-dc6
e01-e30 e32-e33 e40-e46 e81-e82 e84 e87-e88 e8a e8d e94-e97 e99-e9f ea1-ea3 ea5 ea7 eaa-eab ead-eb0
eb2-eb3 ebd ec0-ec4 ec6 edc-edf f00 f40-f47 f49-f6c f88-f8c 1000-102a 103f 1050-1055 105a-105d 1061
1065-1066 106e-1070 1075-1081 108e 10a0-10c5 10c7 10cd 10d0-10fa 10fc-1248 124a-124d 1250-1256 1258
125a-125d 1260-1288 128a-128d 1290-12b0 12b2-12b5 12b8-12be 12c0 12c2-12c5 12c8-12d6 12d8-1310 1312-1315
1318-135a 1380-138f 13a0-13f4 1401-166c 166f-167f 1681-169a 16a0-16ea 1700-170c 170e-1711 1720-1731
1740-1751 1760-176c 176e-1770 1780-17b3 17d7 17dc 1820-1877 1880-18a8 18aa 18b0-18f5 1900-191c 1950-196d
1970-1974 1980-19ab 19c1-19c7 1a00-1a16 1a20-1a54 1aa7 1b05-1b33 1b45-1b4b 1b83-1ba0 1bae-1baf 1bba-1be5
1c00-1c23 1c4d-1c4f 1c5a-1c7d 1ce9-1cec 1cee-1cf1 1cf5-1cf6 1d00-1dbf 1e00-1f15 1f18-1f1d 1f20-1f45
1f48-1f4d 1f50-1f57 1f59 1f5b 1f5d 1f5f-1f7d 1f80-1fb4 1fb6-1fbc 1fbe 1fc2-1fc4 1fc6-1fcc 1fd0-1fd3
1fd6-1fdb 1fe0-1fec 1ff2-1ff4 1ff6-1ffc 2071 207f 2090-209c 2102 2107 210a-2113 2115 2119-211d 2124 2126
2128 212a-212d 212f-2139 213c-213f 2145-2149 214e 2183-2184 2c00-2c2e 2c30-2c5e 2c60-2ce4 2ceb-2cee
2cf2-2cf3 2d00-2d25 2d27 2d2d 2d30-2d67 2d6f 2d80-2d96 2da0-2da6 2da8-2dae 2db0-2db6 2db8-2dbe 2dc0-2dc6
2dc8-2dce 2dd0-2dd6 2dd8-2dde 2e2f 3005-3006 3031-3035 303b-303c 3041-3096 309d-309f 30a1-30fa 30fc-30ff
3105-312d 3131-318e 31a0-31ba 31f0-31ff 3400-4db5 4e00-9fcc a000-a48c a4d0-a4fd a500-a60c a610-a61f
a62a-a62b a640-a66e a67f-a697 a6a0-a6e5 a717-a71f a722-a788 a78b-a78e a790-a793 a7a0-a7aa a7f8-a801
a803-a805 a807-a80a a80c-a822 a840-a873 a882-a8b3 a8f2-a8f7 a8fb a90a-a925 a930-a946 a960-a97c a984-a9b2
a9cf aa00-aa28 aa40-aa42 aa44-aa4b aa60-aa76 aa7a aa80-aaaf aab1 aab5-aab6 aab9-aabd aac0 aac2 aadb-aadd
aae0-aaea aaf2-aaf4 ab01-ab06 ab09-ab0e ab11-ab16 ab20-ab26 ab28-ab2e abc0-abe2 ac00-d7a3 d7b0-d7c6
d7cb-d7fb f900-fa6d fa70-fad9 fb00-fb06 fb13-fb17 fb1d fb1f-fb28 fb2a-fb36 fb38-fb3c fb3e fb40-fb41
fb43-fb44 fb46-fbb1 fbd3-fd3d fd50-fd8f fd92-fdc7 fdf0-fdfb fe70-fe74 fe76-fefc ff21-ff3a ff41-ff5a
ff66-ffbe ffc2-ffc7 ffca-ffcf ffd2-ffd7 ffda-ffdc
"""
_DIGIT_RANGES = """
660-669 6f0-6f9 7c0-7c9 966-96f 9e6-9ef a66-a6f ae6-aef b66-b6f be6-bef c66-c6f ce6-cef d66-d6f e50-e59
ed0-ed9 f20-f29 1040-1049 1090-1099 17e0-17e9 1810-1819 1946-194f 19d0-19d9 1a80-1a89 1a90-1a99
1b50-1b59 1bb0-1bb9 1c40-1c49 1c50-1c59 a620-a629 a8d0-a8d9 a900-a909 a9d0-a9d9 aa50-aa59 abf0-abf9
ff10-ff19
"""
_WORD_EXTRA_RANGES = """
ad 2c2-2c5 2d2-2df 2e5-2eb 2ed 2ef-36f 375 378-379 384-385 3f6 483-487 55a-55f 591-5bd 5bf 5c1-5c2 5c4-5c5
5c7 615-61a 64b-65e 670 6d6-6e4 6e7-6ed 6fd-6fe 70f 711 730-74c 7a6-7b0 7eb-7f3 900-903 93c 93e-94e
951-955 962-963 981-983 9bc 9be-9c4 9c7-9c8 9cb-9cd 9d7 9e2-9e3 a01-a03 a3c a3e-a4f a81-a83 abc abe-acf
b82 bbe-bc2 bc6-bc8 bca-bcd c01-c03 c3e-c56 d3e-d44 d46-d48 e31 e34-e3a e47-e4e eb1 eb4-ebc ec8-ecd
"""
# Characters the jar returns as a token of their own (MISCSYMBOL and the single-character rules).
_SYMBOL_RANGES = """
22 24-2c 3a-3e 5b-5e 60 7b-7e 80 91-94 96-97 a1-a9 ab-ac ae-b4 b6-b9 bb-bf d7 f7 37e 387 589 5be 5c0 5c3
5c6 5f3-5f4 600-603 606-60c 614 61b 61e-61f 66a 66d 6d4 700-70d 7f6-7f8 964-965 e3f e4f 1fbd 2013-2023
2026 2030-203b 203e-2042 2044 2070 2074-207e 2080-208e 20a0 20a4 20ac 2100-2101 2103-2106 2108-2109 2114
2116-2118 211e-2123 2125 2127 2129 212e 213a-213b 2140-2144 214a-214d 214f 2153-215e 2190-2bff 3001-3002
3012 30fb ff01-ff0f ff1a-ff20 ff3b-ff40 ff5b-ff65 ffe0-ffe1 ffe5-ffe6
"""

# ---- the macros of PTBLexer.flex (JFlex %caseless: literals ignore case, character classes do not) ----

_L = "A-Za-z" + _char_class(_LETTER_RANGES)  # [:letter:]
_D = "0-9" + _char_class(_DIGIT_RANGES)  # [:digit:]
_LD = f"[{_L}{_D}]"
DIGIT = f"[{_D}]"
SPLET = "&[aeiouAEIOU](?i:acute|grave|uml);"
LETTER = f"(?:[{_L}{_char_class(_WORD_EXTRA_RANGES)}]|{SPLET})"
WORD = f"{LETTER}(?:{LETTER}|{DIGIT})*(?:[.!?]{LETTER}(?:{LETTER}|{DIGIT})*)*"
SPACE = "[ \t\u00a0\u2000-\u200a\u3000]"
SPACENL = f"(?:{SPACE}|\r\n|[\r\n\u2028\u2029\x0b\x0c\x85])"
_NAME = "[A-Za-z][A-Za-z0-9_:.-]*"
_ATTRIBUTE = f"{_NAME}(?:[ ]*=[ ]*(?:'[^'\r\n]*'|\"[^\"\r\n]*\"))?"
SGML = f"<(?:[!?][A-Za-z-][^>\r\n]*|{_NAME}(?:[ ]+{_ATTRIBUTE})*[ ]*/?|/{_NAME})[ ]*>"
SENTEND = f"{SPACENL}(?:{SPACENL}|[A-Z]|{SGML})"
APOS = "(?:['\x92\u2019]|&(?i:apos);)"
APOSETC = "(?:['`\x91\x92\u2018\u2019\u201b]|&(?i:apos);)"
HYPHEN = "[-_\u058a\u2010\u2011]"
REDAUX = f"{APOS}(?:[msdMSD]|(?i:re|ve|ll))"
SWORD = "[A-Za-z\xad]*[A-MO-Za-mo-z]\xad*"
SREDAUX = f"[nN]{APOSETC}[tT]"
NUMBER = [f"[-+]?{DIGIT}+", f"[-+]?{DIGIT}*(?:[.:,\xad\u066b\u066c]{DIGIT}+)+"]
_ACRO_SPECIAL = ["(?i:Canada|Sino|Korean|EU|Japan|non)-(?i:U\\.S)", "(?i:U\\.S\\.-(?:U\\.K|U\\.S\\.S\\.R))"]
ACRO = ["[A-Za-z](?:\\.[A-Za-z])*", *_ACRO_SPECIAL]
ACRO2 = ["[A-Za-z](?:\\.[A-Za-z])+", *_ACRO_SPECIAL]
_THING_PART = f"(?:[dDoOlL]{APOSETC}{_LD})?{_LD}+"
THING = f"{_THING_PART}(?:{HYPHEN}{_THING_PART})*"
THINGA = "[A-Z]+(?:(?:[+&]|&(?i:amp);)[A-Z]+)+"
# A regex alternation stops at its first success, so the longer acronym form is tried before the letters.
HTHING = "[A-Za-z0-9][A-Za-z0-9.,\xad]*(?:-(?:(?:" + "|".join(ACRO2) + ")\\.|[A-Za-z0-9\xad]+))+"
INSENTP = "[,;:\u3001]"
_URL_END = '[^ \t\n\f\r"<>|.!?(){},-]'
_URL_BODY = f'[^ \t\n\f\r"<>|(){{}}]+{_URL_END}'  # a full URL cannot hold braces, a likely one's path can
_URL_PATH = f'/[^ \t\n\f\r"<>|()]+{_URL_END}'
_LIKELY_URL_HOST = (
    '(?:(?i:www)\\.(?:[^ \t\n\f\r"<>|.!?(){},]+\\.)+[a-zA-Z]{2,4}'
    "|(?:[^ \t\n\f\r\"`'<>|.!?(){},-_$]+\\.)+(?i:com|net|org|edu))"
)
_EMAIL_PART = '[^ \t\n\f\r"<>|(){}.\xa0]+'
_EMAIL_USER = '(?:<|&(?i:lt);)?[a-zA-Z0-9][^ \t\n\f\r"<>|(){}\xa0]*'
EMAIL = f"{_EMAIL_USER}@(?:{_EMAIL_PART}\\.)*{_EMAIL_PART}(?:>|&(?i:gt);)?"
_FILENAME_EXT = (
    "bat|bmp|class|cgi|cpp|dll|docx|doc|exe|gif|gz|h|html|htm|jar|java|jpeg|jpg|mov|mp3|pdf|php|pl|png|ppt"
    "|ps|py|sql|tar|txt|wav|x|xml|zip|c"
)
_FILENAME_PART = f"(?:{LETTER}|{DIGIT})+"
FILENAME = f"{_FILENAME_PART}(?:\\.{_FILENAME_PART})*\\.(?i:{_FILENAME_EXT})"

_ABBREV1 = (  # months, days, states, companies, ... usually followed by lower case words
    "(?i:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec|Mon|Tues|Tue|Wed|Thurs|Thu|Fri"
    "|Ala|Ariz|Calif|Colo|Conn|Ct|Dak|Fla|Ga|Ind|Kans?|Ky|Md|Mich|Minn|Mo|Mont|Neb|Nev|Okla|Penn|Tenn|Va|Vt"
    "|Wisc?|Wyo|Inc|Cos?|Corp|Ltd|Plc|Rt|Bancorp|Bhd|Assn|Univ|Intl|Sys|tel|est|ext|sq|Jr|Sr|Bros"
    "|(?:Ed|Ph)\\.D|Blvd|Rd|Esq|etc|al|seq|Bldg)"
    "|A(?i:z|rk)|D(?i:el)|I(?i:ll)|L(?i:a)|M(?i:ass|iss)|O(?i:re)|P(?i:a)|T(?i:ex)|W(?i:ash)|(?i:Pp?t)[ye](?i:s?)"
)
ABBREV1 = f"(?:{_ABBREV1})\\."
ABBREV4 = [  # titles and the like, usually followed by upper case words
    "(?i:Mrs|Mr|Ms|Drs?|Profs?|Sens?|Reps?|Attys?|Lt|Col|Gen|Messrs|Govs?|Adm|Rev|Maj|Sgt|Cpl|Pvt|Capt|Ste?"
    "|Ave|Pres|Lieut|Hon|Brig|Co?mdr|Pfc|Spc|Supts?|Det|Mt|Ft|Adj|Adv|Asst|Assoc|Ens|Insp|Mlle|Mme|Msgr|Sfc"
    "|vs|Alex|Wm|Jos|Cie|a\\.k\\.a|cf|TREAS|Ph|Invt|Elec|Natl|Dept)|M(?i:iss)|v|(?i:M)[ft](?i:g)",
    *ACRO,
]
ABBREV3 = "(?i:ca|figs?|prop|nos?|art|bldg|pp|op)\\."  # only before a number
_ACRONYM_FOLLOWERS = (  # a capital first letter (a class in the flex file), the rest in any case
    "About According Additionally After An A As At But Earlier He Her Here However If In It Last Many More"
    " Mr. Ms. Now Once One Other Our She Since So Some Such That The Then There These They This We When"
    " While What Yet You"
).split()
ACRONYM_CONTEXT = (
    f"{SPACENL}+(?:"
    + "|".join(
        f"{word[0]}(?i:{re.escape(word[1:])})" if len(word) > 1 else word for word in _ACRONYM_FOLLOWERS
    )
    + f"|{SGML}){SPACENL}"
)
APOWORD = [
    f"{APOS}[nN]{APOS}?",
    f"[lLdDjJ]{APOS}",
    f"(?i:Dunkin|somethin|ol){APOS}",
    f"{APOS}(?i:em|cause|till?)",
    f"[A-HJ-XZn]{APOSETC}[{_L}]{{2,}}",
    f"{APOS}[2-9]0[sS]",
    f"[{_L}]+[aeiouyAEIOUY]{APOSETC}[aeiouA-Z][{_L}]*",
    "(?i:cont'd\\.?|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l)",
]
PHONE = [
    "(?:\\([0-9]{2,3}\\)[ \xa0]?|(?:\\+\\+?)?(?:[0-9]{2,4}[- \xa0])?[0-9]{2,4}[- \xa0])"
    "[0-9]{3,4}[- \xa0]?[0-9]{3,5}",
    "(?:(?:\\+\\+?)?[0-9]{2,4}\\.)?[0-9]{2,4}\\.[0-9]{3,4}\\.[0-9]{3,5}",
]
QUOTES = [
    APOS,
    "''",
    "[`\u2018\u2019\u201a\u201b\u201c\u201d\x91\x92\x93\x94\u201e\u201f\u2039\u203a\xab\xbb]{1,2}",
]
TBSPEC = [
    "-(?i:RRB|LRB|RCB|LCB|RSB|LSB)-",
    "(?i:C\\.D\\.s|pro-|anti-|S(?:&|&amp;)P-500|S(?:&|&amp;)Ls)",
    f"(?i:Cap){APOS}[nN]",
    f"[cC]{APOS}(?i:est)",
]
SMILEY = "[<>]?[:;=][-o*']?[()DPdpO\\\\{@|\\[\\]]"
_FACE = "[-^x=~<>']"
ASIANSMILEY = [
    "[\\^x=~<>]\\.\\[\\^x=~<>\\]",
    f"{_FACE}_{_FACE}",
    f"\\({_FACE}[_.]?{_FACE}\\)",
    "\\([\\^x=~<>']-[\\^x=~<>'`]\\)",
]
MISCSYMBOL = f"[{_char_class(_SYMBOL_RANGES)}]"


# ---- what a rule does with its match (the flex actions, with ptb3Escaping on) -----------------------

Action = Callable[[str], "tuple[str | None, int]"]  # matched text -> (token or None, characters consumed)

_LATEX_QUOTES = str.maketrans(
    {
        "\x91": "`",
        "\u2018": "`",
        "\u201b": "`",
        "\u2039": "`",
        "\x92": "'",
        "\u2019": "'",
        "\u203a": "'",
        "\x93": "``",
        "\u201c": "``",
        "\xab": "``",
        "\x94": "''",
        "\u201d": "''",
        "\xbb": "''",
    }
)
_FRACTIONS = str.maketrans({"\xbc": "1/4", "\xbd": "1/2", "\xbe": "3/4", "\u2153": "1/3", "\u2154": "2/3"})
_BRACKETS = {"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"}


def _quotes(probably_left: bool) -> Callable[[str], str]:
    """latexQuotes: straight quotes become ` and `` (opening) or ' and '' (closing); curly ones by side."""
    single, double = ("`", "``") if probably_left else ("'", "''")

    def normalize(text: str) -> str:
        text = (
            text.replace("&apos;", single).replace("'", single).replace('"', double).replace("&quot;", double)
        )
        return text.translate(_LATEX_QUOTES)

    return normalize


def _no_soft_hyphens(text: str) -> str:
    return text.replace("\xad", "") or "-"  # CoreNLP returns "-" rather than an empty token


def _normalize_amp(text: str) -> str:
    return re.sub("(?i:&amp;)", "&", text)


def _currency(text: str) -> str:
    return re.sub("[\x80\xa4\u20a0\u20ac]", "$", text.replace("\xa2", "cents").replace("\xa3", "#"))


def _nbsp(text: str) -> str:
    return text.replace(" ", "\xa0")  # normalizeSpace: a token never holds a plain space


def _parentheses(text: str) -> str:
    return _nbsp(text).replace("(", "-LRB-").replace(")", "-RRB-")


def _emit(normalize: Callable[[str], str] = str) -> Action:
    return lambda text: (normalize(text), len(text))


def _skip(text: str) -> tuple[str | None, int]:
    return None, len(text)


def _push_back(count: int) -> Action:
    """CoreNLP's yypushback: the last `count` characters are scanned again ("cannot" -> "can" "not")."""
    return lambda text: (text[:-count], len(text) - count)


def _repeat_period(text: str) -> tuple[str | None, int]:
    """An abbreviation that ends a sentence: kept whole, and its period scanned again as a period."""
    return text, len(text) - 1


def _acronym(text: str) -> tuple[str | None, int]:
    return (text[0], 1) if len(text) == 2 else _repeat_period(text)  # "I." -> "I" "."


@dataclass(frozen=True)
class Rule:
    """One lexer rule: its alternatives as (token regex, trailing context regex or ""), and its action.

    `exhaustive` rules can match more than a backtracking regex's first answer (a URL's host can end at
    any of its dots): every end up to the next white space is tried, and the longest match kept.
    """

    name: str
    alternatives: tuple[tuple[str, str], ...]
    action: Action
    exhaustive: bool = False


def _rule(
    name: str,
    main: str | list[str],
    action: Action | None = None,
    context: str = "",
    exhaustive: bool = False,
) -> Rule:
    alternatives = main if isinstance(main, list) else [main]
    return Rule(
        name, tuple((alternative, context) for alternative in alternatives), action or _emit(), exhaustive
    )


def _constant(value: str) -> Action:
    return _emit(lambda _text: value)


RULES: tuple[Rule, ...] = (
    _rule("PROG_LANGS", "[cC]\\+\\+|[cCfF]#"),
    _rule("ASSIMILATIONS3", "(?i:cannot|'twas)", _push_back(3)),
    _rule("ASSIMILATIONS2", "(?i:'tis|gonna|gotta|lemme|gimme|wanna)", _push_back(2)),
    _rule("SGML", SGML, _emit(_nbsp)),
    _rule("SPMDASH", "&(?i:MD|mdash|ndash);|[\x96\x97\u2013\u2014\u2015]", _constant("--")),
    _rule("SPAMP", "&(?i:amp);", _emit(_normalize_amp)),
    _rule("SPPUNC", "&(?i:HT|TL|UR|LR|QC|QL|QR|odq|cdq|#[0-9]+);"),
    _rule("WORD/REDAUX", WORD, _emit(_no_soft_hyphens), context=REDAUX),
    _rule("SWORD/SREDAUX", SWORD, _emit(_no_soft_hyphens), context=SREDAUX),
    _rule("WORD", WORD, _emit(_no_soft_hyphens)),
    _rule("APOWORD", APOWORD),
    _rule("APOWORD2/", f"[yY]{APOS}", context=f"[{_L}]"),
    _rule("FULLURL", f"(?i:https?)://{_URL_BODY}", exhaustive=True),
    _rule("LIKELYURL", f"{_LIKELY_URL_HOST}(?:{_URL_PATH})?", exhaustive=True),
    _rule("EMAIL", EMAIL, exhaustive=True),
    _rule("TWITTER", ["@[a-zA-Z_][a-zA-Z_0-9]*", f"#{LETTER}+"]),
    _rule("REDAUX/", REDAUX, _emit(_quotes(False)), context="[^A-Za-z]"),
    _rule("SREDAUX", SREDAUX, _emit(_quotes(False))),
    _rule("DATE", f"{DIGIT}{{1,2}}[-/]{DIGIT}{{1,2}}[-/]{DIGIT}{{2,4}}"),
    _rule("NUMBER", NUMBER, _emit(_no_soft_hyphens)),
    _rule("SUBSUPNUM", "[\u207a\u207b\u208a\u208b]?(?:[\u2070\xb9\xb2\xb3\u2074-\u2079]+|[\u2080-\u2089]+)"),
    _rule("FRAC", f"(?:{DIGIT}{{1,4}}[- \xa0])?{DIGIT}{{1,4}}(?:\\\\?/|\u2044){DIGIT}{{1,4}}", _emit(_nbsp)),
    _rule("FRAC2", "[\xbc\xbd\xbe\u2153-\u215e]", _emit(lambda text: text.translate(_FRACTIONS))),
    _rule("TBSPEC", TBSPEC, _emit(_normalize_amp)),
    _rule("THING3", "[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\\\?/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}"),
    _rule("DOLSIGN", "[A-Z]*\\$|#"),
    _rule(
        "DOLSIGN2",
        "[\xa2\xa3\xa4\xa5\x80\u20a0\u20ac\u060b\u0e3f\u20a4\uffe0\uffe1\uffe5\uffe6]",
        _emit(_currency),
    ),
    _rule("ACRONYM/", [f"(?:{acro})\\." for acro in ACRO], _acronym, context=ACRONYM_CONTEXT),
    _rule("ABBREV3/", ABBREV3, context=f"{SPACENL}?{DIGIT}"),
    _rule("ABBREV1/SENTEND", ABBREV1, _repeat_period, context=SENTEND),
    _rule("ABBREV1/", ABBREV1, context=".."),
    _rule("ABBREV1", ABBREV1, _repeat_period),
    _rule("ABBREV2", [f"(?:{abbrev})\\." for abbrev in ABBREV4]),
    _rule("ABBREV4/", ABBREV4, context=SPACE),
    _rule("ACRO/", ACRO, context=SPACENL),
    _rule("TBSPEC2/", f"{APOS}[0-9][0-9]", context=SPACENL),
    _rule("FILENAME/", FILENAME, context=f"(?:{SPACENL}|[.?!,])"),
    _rule("WORD./", f"{WORD}\\.", _emit(_no_soft_hyphens), context=INSENTP),
    _rule("PHONE", PHONE, _emit(_parentheses)),
    _rule("DBLQUOT/", '"|&(?i:quot);', _emit(_quotes(True)), context="[A-Za-z0-9$]"),
    _rule("DBLQUOT", '"|&(?i:quot);', _emit(_quotes(False))),
    _rule("DELETE", "\x7f", _skip),
    _rule("LESSTHAN", "<|&(?i:lt);", _constant("<")),
    _rule("GREATERTHAN", ">|&(?i:gt);", _constant(">")),
    _rule("SMILEY/", SMILEY, _emit(_parentheses), context="[^A-Za-z0-9]"),
    _rule("ASIANSMILEY", ASIANSMILEY, _emit(_parentheses)),
    _rule("BRACKET", "[][(){}]", _emit(_BRACKETS.__getitem__)),
    _rule("HYPHENS", "-+", _emit(lambda text: "--" if 3 <= len(text) <= 4 else text)),
    _rule("LDOTS", ["\\.{3,5}", "(?:\\.[ \xa0]){2,4}\\.", "[\x85\u2026]"], _constant("...")),
    _rule("FNMARKS", ["@+", "#+", "_+"]),
    _rule("ASTS", ["\\*+", "(?:\\\\\\*){1,3}"]),
    _rule("INSENTP", INSENTP),
    _rule("QUESTION", "[?!]+"),
    _rule("PERIOD", "[.\xa1\xbf\u037e\u0589\u061f\u06d4\u0700-\u0702\u07fa\u3002]"),
    _rule("EQUALS", "="),
    _rule("SLASH", "/"),
    _rule("HTHING./", f"{HTHING}\\.", _emit(_no_soft_hyphens), context=INSENTP),
    _rule("HTHING", HTHING, _emit(_no_soft_hyphens)),
    _rule("THING./", f"{THING}\\.", context=INSENTP),
    _rule("THING", THING),
    _rule("THINGA./", f"{THINGA}\\.", _emit(_normalize_amp), context=INSENTP),
    _rule("THINGA", THINGA, _emit(_normalize_amp)),
    _rule("QUOTE/", "'", _emit(_quotes(True)), context="[A-Za-z][^ \t\n\r\xa0]"),
    _rule("REDAUX", REDAUX, _emit(_quotes(False))),
    _rule("QUOTES", QUOTES, _emit(_quotes(False))),
    _rule("FAKEDUCKFEET", "<<|>>"),
    _rule("MISCSYMBOL", MISCSYMBOL),
    _rule("SPACES", f"\x00|{SPACE}+|[\u200b\u200e\u200f\ufeff]", _skip),
    _rule("NEWLINE", "\r\n|[\r\n\u2028\u2029\x0b\x0c]", _skip),
    _rule("NBSP", "&(?i:nbsp);", _skip),
    _rule("UNTOKENIZABLE", ".", _skip),
)

_NOT_WHITE = re.compile("[^ \t\n\f\r]*")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


@functools.cache
def _alternatives() -> tuple[tuple[re.Pattern[str], Rule], ...]:
    """Every alternative of every rule in priority order, compiled: its token is group 1, then its context."""
    return tuple(
        (re.compile(f"({main}){context}", re.DOTALL), rule)
        for rule in RULES
        for main, context in rule.alternatives
    )


def lex(text: str, following: str = "") -> list[str]:
    """The tokens CoreNLP 3.4.1's PTBLexer returns for `text` (normalized, not lower-cased).

    `following` is what comes after `text` in the lexer's input: its rules' trailing contexts may look into
    it, but no token is taken from it. Nothing follows at the end of the input.
    """
    # Java sees a character outside the BMP as its two UTF-16 surrogates, each untokenizable on its own
    # (but kept inside a URL or an e-mail address); so do we, and put the pairs back together at the end.
    text, following = _ASTRAL.sub(_to_surrogates, text), _ASTRAL.sub(_to_surrogates, following)
    stop, text = len(text), text + following
    alternatives = _alternatives()
    tokens: list[str] = []
    position = 0
    while position < stop:
        best_rule, best_match, best_end = alternatives[-1][1], None, position
        for pattern, rule in alternatives:
            match = pattern.match(text, position)
            if match is not None and rule.exhaustive:
                match = _longest_match(pattern, text, position, match)
            if match is not None and match.end() > best_end:  # the longest; the first rule on a tie
                best_rule, best_match, best_end = rule, match, match.end()
        assert best_match is not None  # UNTOKENIZABLE matches any character
        token, consumed = best_rule.action(best_match.group(1))
        if token is not None:
            tokens.append(_SURROGATE_PAIR.sub(_from_surrogates, token) if _SURROGATE.search(token) else token)
        position += consumed
    return tokens


def _longest_match(pattern: re.Pattern[str], text: str, position: int, match: re.Match[str]) -> re.Match[str]:
    """The longest match of `pattern` at `position`, ending before the next white space (see Rule)."""
    limit = _NOT_WHITE.match(text, position).end()  # type: ignore[union-attr]
    for end in range(limit, match.end(), -1):
        longer = pattern.fullmatch(text, position, end)
        if longer is not None:
            return longer
    return match


def _to_surrogates(match: re.Match[str]) -> str:
    offset = ord(match.group()) - 0x10000
    return chr(0xD800 + (offset >> 10)) + chr(0xDC00 + (offset & 0x3FF))


def _from_surrogates(match: re.Match[str]) -> str:
    high, low = match.group()
    return chr(0x10000 + ((ord(high) - 0xD800) << 10) + (ord(low) - 0xDC00))
