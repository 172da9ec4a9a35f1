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

from vlkit.metrics.ptb_chars import DIGIT_RANGES, LETTER_RANGES, SYMBOL_RANGES, WORD_EXTRA_RANGES, char_class

# ---- the macros of PTBLexer.flex (JFlex %caseless: literals ignore case, character classes do not) ----

_L = "A-Za-z" + char_class(LETTER_RANGES)  # [:letter:]
_D = "0-9" + char_class(DIGIT_RANGES)  # [:digit:]
_LD = f"[{_L}{_D}]"
DIGIT = f"[{_D}]"
SPLET = "&[aeiouAEIOU](?i:acute|grave|uml);"
LETTER = f"(?:[{_L}{char_class(WORD_EXTRA_RANGES)}]|{SPLET})"
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
MISCSYMBOL = f"[{char_class(SYMBOL_RANGES)}]"


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
