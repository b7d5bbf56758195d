"""The transaction category taxonomy and the rule-based categorizer applied on ingest.

Every transaction the hub stores carries exactly one :class:`Category`. A connector that knows
the category (its bank classifies transactions) wins when it names a member of the taxonomy;
otherwise keyword rules read the merchant and the description. See ``docs/categories.md``.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal
from enum import StrEnum
from typing import Literal


class Category(StrEnum):
    """What a transaction was for. Values are the strings the API returns."""

    AUTO_AND_TRANSPORT = "auto_and_transport"
    """Fuel, public transport, taxis and ride-hailing, parking, tolls, car costs."""
    BILLS_AND_UTILITIES = "bills_and_utilities"
    """Electricity, gas, water, internet, phone, TV licence."""
    EDUCATION = "education"
    """Tuition, schools, universities, courses."""
    ENTERTAINMENT = "entertainment"
    """Streaming, cinema, concerts, games, events."""
    FEES_AND_CHARGES = "fees_and_charges"
    """Bank fees, account charges, interest charged, penalties."""
    FOOD_AND_DINING = "food_and_dining"
    """Groceries, restaurants, cafés, food delivery."""
    GIFTS_AND_DONATIONS = "gifts_and_donations"
    """Charity donations and gifts."""
    HEALTH_AND_FITNESS = "health_and_fitness"
    """Pharmacies, doctors, hospitals, gyms, health insurance."""
    HOME = "home"
    """Rent, home furnishing and DIY, household services."""
    INCOME = "income"
    """Salary, wages, interest and other money earned."""
    INVESTMENTS = "investments"
    """Brokers, funds, securities, crypto exchanges."""
    KIDS = "kids"
    """Childcare, toys, things for children."""
    LOANS = "loans"
    """Loan and mortgage repayments."""
    PERSONAL_CARE = "personal_care"
    """Hairdressers, beauty, drugstores, spas."""
    PETS = "pets"
    """Pet food and supplies, vets."""
    SHOPPING = "shopping"
    """Online and high-street shopping: clothes, electronics, marketplaces."""
    TAXES = "taxes"
    """Income tax, council tax, other taxes paid to the state."""
    TRANSFER = "transfer"
    """Money moved between people or own accounts, card repayments."""
    TRAVEL = "travel"
    """Flights, hotels, holiday rentals, travel agencies."""
    UNCATEGORIZED = "uncategorized"
    """Nothing matched."""


_VALID = frozenset(c.value for c in Category)
Sign = Literal["credit", "debit", "any"]

# (category, sign it applies to, keyword patterns); earlier rules win over later ones, so specific
# merchants ("uber eats", "pret a manger") come before the generic word they contain. Patterns are
# written against normalized text: lower case, accents stripped, "đ" as "d", "ß" as "ss".
_RULES: tuple[tuple[Category, Sign, tuple[str, ...]], ...] = (
    (
        Category.INCOME,
        "credit",
        (
            "salary",
            "salaire",
            "payroll",
            "direct dep",
            "wage",
            "wages",
            "gehalt",
            "lohn",
            "bezuge",
            "paie",
            "luong",
            "gaji",
            "interest",
            "zinsgutschrift",
            "zinsen",
            "interet",
            "interets",
            "tra lai",
            "hibah",
        ),
    ),
    (
        Category.FOOD_AND_DINING,
        "any",
        (
            "uber eats",
            "ubereats",
            "grab food",
            "grabfood",
            "shopee food",
            "shopeefood",
            "pret a manger",
            "lieferando",
            "deliveroo",
            "doordash",
            "grubhub",
            "foodpanda",
            "just eat",
            "justeat",
            "baemin",
        ),
    ),
    (
        Category.TAXES,
        "any",
        (
            "council tax",
            "tax",
            "steuer*",
            "*steuer",
            "finanzamt",
            "impot",
            "impots",
            "dgfip",
            "thue tncn",
            "nop thue",
            "irs",
            "hmrc",
            "lhdn",
        ),
    ),
    (
        Category.TRANSFER,
        "any",
        (
            "credit card payment",
            "autopay payment",
            "payment received",
            "kreditkartenabrechnung",
            "kreditkarten*",
            "carte differee",
            "remboursement carte",
            "du no the",
        ),
    ),
    (
        Category.LOANS,
        "debit",
        (
            "loan",
            "mortgage",
            "darlehen",
            "tilgung",
            "kreditrate",
            "emprunt",
            "echeance pret",
            "pret immo*",
            "tra no vay",
            "khoan vay",
            "pinjaman",
        ),
    ),
    # "hoc phi" is tuition, though "phi" alone is a fee
    (Category.EDUCATION, "any", ("hoc phi", "tuition fee", "tuition fees")),
    (
        Category.FEES_AND_CHARGES,
        "debit",
        (
            "fee",
            "fees",
            "service charge",
            "service charges",
            "gebuhr*",
            "*gebuhr",
            "*gebuhren",
            "gebuehr*",
            "*gebuehr",
            "*gebuehren",
            "*entgelt",
            "kontofuhrung*",
            "frais",
            "commission",
            "cotisation",
            "phi",
            "caj",
            "overdraft",
        ),
    ),
    (
        Category.HOME,
        "debit",
        (
            "rent",
            "miete",
            "loyer",
            "thue nha",
            "tien nha",
            "sewa",
            "ikea",
            "bauhaus",
            "hornbach",
            "obi",
            "leroy merlin",
            "castorama",
            "home depot",
            "lowes",
            "lowe s",
        ),
    ),
    (
        Category.BILLS_AND_UTILITIES,
        "debit",
        (
            "electricity",
            "strom",
            "stadtwerke",
            "edf",
            "engie",
            "evn*",
            "tien dien",
            "tien nuoc",
            "water",
            "eau de",
            "british gas",
            "pg e",
            "pg and e",
            "pgande",
            "internet",
            "broadband",
            "telekom",
            "vodafone",
            "orange",
            "free mobile",
            "sfr",
            "bouygues",
            "verizon",
            "vzwrlss",
            "comcast",
            "xfinity",
            "bt group",
            "vnpt",
            "viettel",
            "sawaco",
            "tenaga",
            "tnb",
            "unifi",
            "maxis",
            "air selangor",
            "rundfunk",
            "utilities",
            "mobilfunk",
        ),
    ),
    (
        Category.AUTO_AND_TRANSPORT,
        "any",
        (
            "uber",
            "grab",
            "lyft",
            "bolt",
            "taxi",
            "be group",
            "gojek",
            "xanh sm",
            "db vertrieb",
            "deutsche bahn",
            "bvg",
            "mvg",
            "hvv",
            "sncf",
            "ratp",
            "navigo",
            "tfl",
            "trainline",
            "national rail",
            "mta",
            "shell",
            "aral",
            "esso",
            "bp",
            "totalenergies",
            "petronas",
            "petrolimex",
            "chevron",
            "exxon",
            "tankstelle",
            "fuel",
            "petrol",
            "carburant",
            "xang dau",
            "parking",
            "parken",
            "parkhaus",
            "stationnement",
            "toll",
            "maut",
            "peage",
            "tng",
            "touch n go",
            "touchngo",
            "vetc",
        ),
    ),
    (
        Category.TRAVEL,
        "any",
        (
            "airline",
            "airlines",
            "airways",
            "air france",
            "lufthansa",
            "easyjet",
            "ryanair",
            "vietjet",
            "airasia",
            "hotel",
            "hotels",
            "airbnb",
            "booking com",
            "expedia",
            "agoda",
            "marriott",
            "hilton",
            "hostel",
            "khach san",
            "ve may bay",
        ),
    ),
    (
        Category.FOOD_AND_DINING,
        "any",
        (
            "rewe",
            "edeka",
            "lidl",
            "aldi",
            "netto",
            "kaufland",
            "carrefour",
            "monoprix",
            "franprix",
            "picard",
            "auchan",
            "leclerc",
            "intermarche",
            "tesco",
            "sainsbury",
            "sainsburys",
            "sainsbury s",
            "asda",
            "morrisons",
            "waitrose",
            "greggs",
            "whole foods",
            "wholefoods",
            "wholefds",
            "trader joe s",
            "trader joes",
            "safeway",
            "kroger",
            "winmart",
            "coopmart",
            "co op mart",
            "coop mart",
            "bach hoa xanh",
            "circle k",
            "7 eleven",
            "family mart",
            "familymart",
            "99 speedmart",
            "jaya grocer",
            "mydin",
            "grocery",
            "supermarket",
            "supermarkt",
            "supermarche",
            "restaurant",
            "brasserie",
            "boulangerie",
            "backerei",
            "baeckerei",
            "bakery",
            "cafe",
            "coffee",
            "starbucks",
            "highlands",
            "phuc long",
            "tealive",
            "pho",
            "nha hang",
            "quan an",
            "mcdonald",
            "mcdonalds",
            "mcdonald s",
            "burger",
            "kfc",
            "pizza",
            "chipotle",
            "sushi",
        ),
    ),
    (
        Category.HEALTH_AND_FITNESS,
        "any",
        (
            "pharmacy",
            "pharmacie",
            "apotheke",
            "nha thuoc",
            "pharmacity",
            "long chau",
            "guardian",
            "cvs",
            "walgreens",
            "boots",
            "doctor",
            "arzt",
            "zahnarzt",
            "medecin",
            "hospital",
            "krankenhaus",
            "benh vien",
            "phong kham",
            "clinic",
            "dentist",
            "gym",
            "fitness",
            "puregym",
            "mcfit",
            "krankenkasse",
        ),
    ),
    (
        Category.PERSONAL_CARE,
        "any",
        (
            "friseur",
            "coiffeur",
            "hair*",
            "barber",
            "salon",
            "spa",
            "nail",
            "nails",
            "dm drogerie",
            "drogerie",
            "rossmann",
            "douglas",
            "sephora",
            "watsons",
            "cat toc",
        ),
    ),
    (
        Category.PETS,
        "any",
        (
            "pet",
            "pets",
            "fressnapf",
            "zooplus",
            "petsmart",
            "petco",
            "tierarzt",
            "veterinaire",
            "vet",
            "thu y",
            "animalerie",
        ),
    ),
    (
        Category.KIDS,
        "any",
        (
            "kita",
            "kindergarten",
            "creche",
            "babysitter",
            "nounou",
            "toys r us",
            "mytoys",
            "smyths",
            "do choi",
        ),
    ),
    (
        Category.EDUCATION,
        "any",
        (
            "school",
            "schule",
            "ecole",
            "universit*",
            "tuition",
            "hoc phi",
            "coursera",
            "udemy",
            "duolingo",
        ),
    ),
    (
        Category.ENTERTAINMENT,
        "any",
        (
            "netflix",
            "spotify",
            "disney",
            "youtube",
            "steam",
            "playstation",
            "xbox",
            "nintendo",
            "cinema",
            "cinemas",
            "cine",
            "kino",
            "cinemaxx",
            "cgv",
            "ugc",
            "amc",
            "odeon",
            "gsc",
            "theatre",
            "theatres",
            "theater",
            "concert",
            "ticketmaster",
            "eventim",
        ),
    ),
    (
        Category.SHOPPING,
        "any",
        (
            "amazon",
            "amzn",
            "ebay",
            "zalando",
            "otto",
            "fnac",
            "darty",
            "cdiscount",
            "target",
            "walmart",
            "best buy",
            "argos",
            "primark",
            "zara",
            "uniqlo",
            "decathlon",
            "mediamarkt",
            "saturn",
            "shopee",
            "lazada",
            "tiki",
            "tiki vn",
        ),
    ),
    (
        Category.INVESTMENTS,
        "any",
        (
            "broker*",
            "trade republic",
            "scalable capital",
            "degiro",
            "vanguard",
            "fidelity",
            "robinhood",
            "etoro",
            "coinbase",
            "binance",
            "wertpapier*",
            "etf",
            "chung khoan",
            "amanah saham",
        ),
    ),
    (
        Category.GIFTS_AND_DONATIONS,
        "any",
        (
            "donation",
            "spende",
            "charity",
            "unicef",
            "red cross",
            "rotes kreuz",
            "croix rouge",
            "oxfam",
            "gofundme",
            "gift",
            "geschenk",
            "cadeau",
            "qua tang",
            "tu thien",
            "ung ho",
        ),
    ),
    (
        Category.TRANSFER,
        "any",
        (
            "transfer",
            "uberweisung",
            "ueberweisung",
            "umbuchung",
            "virement",
            "vir",
            "chuyen tien",
            "chuyen khoan",
            "zelle",
            "venmo",
            "standing order",
            "dauerauftrag",
            "faster payment",
            "duitnow",
            "ibg",
            "paypal",
        ),
    ),
)

_SIGNS = tuple(sign for _, sign, _ in _RULES)
_CATEGORIES = tuple(category for category, _, _ in _RULES)
_TOKEN = re.compile(r"[a-z0-9]+")
_FOLD = str.maketrans({"đ": "d", "Đ": "D", "ß": "ss", "ø": "o", "æ": "ae", "œ": "oe"})


def _compile() -> tuple[dict[str, int], frozenset[str], int, dict[str, int], dict[str, int]]:
    """Keywords become a phrase table looked up by whole words (so "phi" never fires inside
    "phim", nor "tax" inside "taxi"); ``word*`` and ``*word`` become prefix and suffix tables
    for compound words ("Kontoführungsentgelt")."""
    phrases: dict[str, int] = {}
    prefixes: dict[str, int] = {}
    suffixes: dict[str, int] = {}
    starters: set[str] = set()
    longest = 1
    for index, (_, _, keywords) in enumerate(_RULES):
        for keyword in keywords:
            if keyword.endswith("*"):
                prefixes.setdefault(keyword[:-1], index)
            elif keyword.startswith("*"):
                suffixes.setdefault(keyword[1:], index)
            else:
                words = _TOKEN.findall(keyword)
                phrases.setdefault(" ".join(words), index)
                if len(words) > 1:
                    starters.add(words[0])
                    longest = max(longest, len(words))
    return phrases, frozenset(starters), longest, prefixes, suffixes


_PHRASES, _STARTERS, _LONGEST, _PREFIXES, _SUFFIXES = _compile()
_PREFIX_KEYS = tuple(_PREFIXES)
_SUFFIX_KEYS = tuple(_SUFFIXES)


def normalize(text: str) -> str:
    """Lower case without accents, the form the rules are written against."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


_SINGLE = frozenset(key for key in _PHRASES if " " not in key)
#: the phrases of several words, by their first word
_MULTI: dict[str, tuple[tuple[str, int], ...]] = {
    starter: tuple(
        (f" {key} ", index) for key, index in _PHRASES.items() if key.startswith(starter + " ")
    )
    for starter in _STARTERS
}
#: a text without any of these in it has no token that starts or ends with a prefix or suffix
#: key (a cheap screen before testing each token)
_AFFIX_SCREEN = tuple(
    key
    for key in sorted({*_PREFIX_KEYS, *_SUFFIX_KEYS})
    if not any(other != key and other in key for other in (*_PREFIX_KEYS, *_SUFFIX_KEYS))
)
#: an exact memo of :func:`categorize` by everything it reads (descriptions repeat heavily:
#: the same shop, the same standing order); cleared when it holds this many answers
MEMO_SIZE = 65_536
_memo: dict[tuple[str, str | None, bool, str | None, str | None], str] = {}


def categorize(
    description: str,
    merchant: str | None,
    amount: Decimal,
    connector_category: str | None = None,
    counterparty: str | None = None,
) -> str:
    """The category of one transaction: always a :class:`Category` value.

    A ``connector_category`` that is a member of the taxonomy is kept. Otherwise the first rule
    (in priority order) with a keyword in the merchant, the counterparty's name (the payer of a
    credit, the payee of a debit, which statement files name apart from the purpose text) or
    the description wins, among the rules that apply to the amount's sign (income only for
    credits; rent, bills, fees, loans only for debits). Nothing matching gives
    ``uncategorized``.
    """
    credit = amount > 0
    key = (description, merchant, credit, connector_category, counterparty)
    found = _memo.get(key)
    if found is None:
        if len(_memo) >= MEMO_SIZE:
            _memo.clear()
        found = _memo[key] = _categorize(
            description, _named(merchant, counterparty), credit, connector_category
        )
    return found


def _named(merchant: str | None, counterparty: str | None) -> str | None:
    """Merchant and counterparty as one text, each once (statement files often give both)."""
    if not counterparty or (merchant and counterparty.casefold() in merchant.casefold()):
        return merchant
    if not merchant or merchant.casefold() in counterparty.casefold():
        return counterparty
    return f"{merchant} {counterparty}"


def _categorize(
    description: str, merchant: str | None, credit: bool, connector_category: str | None
) -> str:
    if connector_category:
        known = connector_category.strip().lower()
        if known in _VALID:
            return known
    text = normalize(f"{merchant} {description}" if merchant else description)
    tokens = _TOKEN.findall(text)
    words = set(tokens)
    # Which rules fire does not depend on where or how often a keyword occurs: the candidates
    # are a set, and the best is the lowest index among those that apply to the sign.
    phrases = _PHRASES
    candidates = [phrases[word] for word in words.intersection(_SINGLE)]
    starters = words.intersection(_STARTERS)
    if starters:
        # tokens hold no spaces: " a b " is in the spaced sequence exactly when a, b follow
        spaced = f" {' '.join(tokens)} "
        for starter in starters:
            candidates.extend(index for phrase, index in _MULTI[starter] if phrase in spaced)
    for screen in _AFFIX_SCREEN:
        if screen in text:
            for token in words:
                if token.startswith(_PREFIX_KEYS):
                    candidates.extend(i for key, i in _PREFIXES.items() if token.startswith(key))
                if token.endswith(_SUFFIX_KEYS):
                    candidates.extend(i for key, i in _SUFFIXES.items() if token.endswith(key))
            break
    signs, sign = _SIGNS, "credit" if credit else "debit"
    best = min((i for i in candidates if signs[i] in ("any", sign)), default=len(_RULES))
    return _CATEGORIES[best].value if best < len(_RULES) else Category.UNCATEGORIZED.value
