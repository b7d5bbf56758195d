"""How the sandbox banks of each country write their statements: merchants, amounts, wording.

Amount ranges are in euro cents of local purchasing power; a locale's ``factor`` turns them into
the local currency's minor units, so a coffee costs about what a coffee costs there.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Merchant:
    """A card merchant: ``statement`` is how it shows on the statement, ``name`` the clean name."""

    name: str
    statement: str
    kind: str
    low: int
    high: int
    weight: int


@dataclass(frozen=True, slots=True)
class Bill:
    """A monthly direct debit from the current account on ``day`` of the month."""

    day: int
    name: str
    text: str
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class Locale:
    """A country's statement style; ``salary`` and ``rent`` are in local minor units."""

    country: str
    factor: float
    salary: int
    rent: int
    employer: str
    landlord: str
    holders: tuple[str, ...]
    people: tuple[str, ...]
    #: a card payment's statement line; ``{d}`` is the date written with ``card_date``
    card_text: str
    card_date: str
    texts: dict[str, str]
    merchants: tuple[Merchant, ...]
    bills: tuple[Bill, ...]
    card_bin: str = "422149"


M = Merchant

VN = Locale(
    country="VN",
    factor=12_000.0,
    salary=25_000_000,
    rent=7_000_000,
    employer="CONG TY TNHH CONG NGHE SAO MAI",
    landlord="TRAN THI HOA",
    holders=("NGUYEN VAN AN", "TRAN THI BICH NGOC", "LE MINH KHOA", "PHAM THU HANG"),
    people=("NGUYEN VAN BINH", "LE THI MAI", "PHAM MINH TUAN", "VO THANH TAM"),
    card_text=(
        "GD THE QUA POS SO THE {bin}...{last4} NGAY {d} TAI {stmt} APPCODE {code} TID / FT{ref}"
    ),
    card_date="%d/%m/%Y",
    texts={
        "salary": "LUONG THANG {m:%m/%Y} - {employer}",
        "rent": "CHUYEN TIEN THUE NHA THANG {m:%m/%Y} DEN {landlord}",
        "savings_out": "CHUYEN TIEN GUI TIET KIEM ONLINE FT{ref}",
        "savings_in": "NHAN TIEN GUI TIET KIEM TU TK THANH TOAN FT{ref}",
        "repayment_out": "THANH TOAN DU NO THE TIN DUNG {last4} KY {m:%m/%Y}",
        "repayment_in": "THANH TOAN DU NO THE - CAM ON QUY KHACH",
        "fee": "PHI DUY TRI DICH VU SMS BANKING THANG {m:%m/%Y}",
        "interest": "TRA LAI TIEN GUI TIET KIEM",
        "transfer_in": "{name} CHUYEN TIEN FT{ref}",
        "transfer_out": "CHUYEN TIEN DEN {name} FT{ref}",
    },
    merchants=(
        M("Grab", "GRAB VN HO CHI MINH", "transport", 150, 900, 8),
        M("Uber", "UBER VN HELP.UBER.COM NL", "transport", 150, 900, 3),
        M("Be", "BE GROUP JSC", "transport", 100, 600, 3),
        M("Highlands Coffee", "HIGHLANDS COFFEE NGUYEN HUE", "dining", 250, 500, 6),
        M("Phúc Long", "PHUC LONG COFFEE AND TEA", "dining", 250, 450, 4),
        M("Phở 24", "PHO 24 LE THANH TON", "dining", 400, 900, 3),
        M("ShopeeFood", "SHOPEEFOOD VN", "dining", 400, 1800, 4),
        M("Circle K", "CIRCLE K VIETNAM", "grocery", 100, 600, 5),
        M("WinMart", "WINMART+ Q1 HCM", "grocery", 600, 4500, 6),
        M("Co.op Mart", "COOPMART CONG QUYNH", "grocery", 900, 6500, 4),
        M("Bách Hóa Xanh", "BACH HOA XANH", "grocery", 400, 3000, 4),
        M("Shopee", "SHOPEE VIETNAM", "shopping", 600, 9000, 4),
        M("Lazada", "LAZADA VIETNAM", "shopping", 600, 9000, 2),
        M("Tiki", "TIKI.VN", "shopping", 600, 6000, 2),
        M("Petrolimex", "PETROLIMEX CHXD SO 12", "fuel", 500, 1600, 3),
        M("CGV", "CGV VINCOM DONG KHOI", "entertainment", 500, 1400, 2),
        M("Pharmacity", "PHARMACITY NHA THUOC", "health", 200, 2500, 2),
        M("Vietnam Airlines", "VIETNAM AIRLINES HAN", "travel", 5000, 25000, 1),
        M("Agoda", "AGODA.COM HOTEL", "travel", 4000, 18000, 1),
    ),
    bills=(
        Bill(
            10, "EVN HCMC", "THANH TOAN TIEN DIEN EVN HCMC KY {m:%m/%Y} MA KH PE{ref}", 4000, 12000
        ),
        Bill(15, "VNPT", "THANH TOAN CUOC INTERNET VNPT HCM {m:%m/%Y}", 1800, 2600),
        Bill(18, "Viettel", "NAP TIEN DIEN THOAI VIETTEL 0987{last4}", 800, 2000),
        Bill(20, "SAWACO", "THANH TOAN TIEN NUOC SAWACO KY {m:%m/%Y}", 900, 2200),
    ),
)

DE = Locale(
    country="DE",
    factor=1.0,
    salary=325_000,
    rent=105_000,
    employer="Musterfirma GmbH",
    landlord="Hausverwaltung Schmidt",
    holders=("Max Mustermann", "Erika Musterfrau", "Jonas Becker", "Lea Hoffmann"),
    people=("Anna Schulz", "Tobias Wagner", "Mia Fischer", "Paul Weber"),
    card_text="{stmt} {d} Debitk. {bin}******{last4} Ref. {code}",
    card_date="%d.%m.%Y",
    texts={
        "salary": "Gehalt {m:%m/%Y} {employer}",
        "rent": "Dauerauftrag Miete {m:%m/%Y} {landlord}",
        "savings_out": "Umbuchung auf Tagesgeld Ref. {ref}",
        "savings_in": "Umbuchung vom Girokonto Ref. {ref}",
        "repayment_out": "Kreditkartenabrechnung {m:%m/%Y} Karte {last4}",
        "repayment_in": "Ausgleich Kreditkartenabrechnung",
        "fee": "Kontoführungsentgelt {m:%m/%Y}",
        "interest": "Zinsgutschrift Tagesgeld",
        "transfer_in": "Überweisung von {name} Ref. {ref}",
        "transfer_out": "Überweisung an {name} Ref. {ref}",
    },
    merchants=(
        M("REWE", "REWE Markt GmbH//Berlin", "grocery", 800, 8000, 8),
        M("EDEKA", "EDEKA Center//Berlin", "grocery", 800, 6000, 4),
        M("Lidl", "LIDL DIENSTL GMBH//Berlin", "grocery", 500, 5000, 5),
        M("ALDI SÜD", "ALDI SUED//Berlin", "grocery", 500, 4500, 4),
        M("dm-drogerie markt", "dm-drogerie markt//Berlin", "care", 300, 3500, 3),
        M("Lieferando", "Lieferando.de//Berlin", "dining", 1500, 4500, 4),
        M("Bäckerei Kamps", "Baeckerei Kamps//Berlin", "dining", 250, 900, 4),
        M("Restaurant Zur Linde", "Restaurant Zur Linde//Berlin", "dining", 2000, 7000, 2),
        M("BVG", "BVG Ticket App//Berlin", "transport", 320, 4900, 4),
        M("Deutsche Bahn", "DB Vertrieb GmbH//Frankfurt", "transport", 1500, 9000, 2),
        M("Uber", "UBER *TRIP HELP.UBER.COM", "transport", 900, 3500, 2),
        M("Shell", "Shell Station//Berlin", "fuel", 3000, 8000, 2),
        M("Aral", "ARAL Tankstelle//Berlin", "fuel", 3000, 8000, 2),
        M("Amazon", "AMAZON PAYMENTS EUROPE S.C.A.", "shopping", 800, 9000, 5),
        M("Zalando", "Zalando SE//Berlin", "shopping", 2000, 12000, 2),
        M("MediaMarkt", "MediaMarkt//Berlin", "shopping", 2000, 30000, 1),
        M("Apotheke am Markt", "Apotheke am Markt//Berlin", "health", 500, 4000, 2),
        M("Fressnapf", "Fressnapf//Berlin", "pets", 1000, 5000, 1),
        M("CinemaxX", "CinemaxX//Berlin", "entertainment", 1100, 3500, 1),
        M("Friseur Haarwerk", "Friseur Haarwerk//Berlin", "care", 2500, 6000, 1),
        M("Lufthansa", "LUFTHANSA//Frankfurt", "travel", 8000, 45000, 1),
    ),
    bills=(
        Bill(
            10, "Stadtwerke", "Stadtwerke Berlin Abschlag Strom {m:%m/%Y} Vertrag {ref}", 6000, 9500
        ),
        Bill(15, "Telekom", "Telekom Deutschland GmbH Rechnung {ref}", 3999, 4999),
        Bill(15, "Rundfunkbeitrag", "Rundfunk ARD, ZDF, DRadio Beitragsnr. {ref}", 1836, 1836),
        Bill(20, "Vodafone", "Vodafone GmbH Mobilfunk Kd-Nr. {ref}", 1999, 2999),
    ),
)

FR = Locale(
    country="FR",
    factor=1.0,
    salary=275_000,
    rent=95_000,
    employer="ACME FRANCE SAS",
    landlord="SCI LES TILLEULS",
    holders=("Camille Martin", "Louis Bernard", "Chloé Dubois", "Hugo Laurent"),
    people=("Manon Petit", "Lucas Moreau", "Inès Garcia", "Nathan Roux"),
    card_text="CB {stmt} {d} CARTE {bin}XX{last4}",
    card_date="%d/%m/%y",
    texts={
        "salary": "VIR SEPA RECU /DE {employer} /MOTIF SALAIRE {m:%m/%Y}",
        "rent": "VIR SEPA EMIS /MOTIF LOYER {m:%m/%Y} /BEN {landlord}",
        "savings_out": "VIR VERS LIVRET A REF {ref}",
        "savings_in": "VIR DEPUIS COMPTE CHEQUES REF {ref}",
        "repayment_out": "PRLV CARTE DIFFEREE {m:%m/%Y} CARTE {last4}",
        "repayment_in": "REMBOURSEMENT CARTE DIFFEREE",
        "fee": "FRAIS TENUE DE COMPTE {m:%m/%Y}",
        "interest": "INTERETS LIVRET A",
        "transfer_in": "VIR SEPA RECU /DE {name} /REF {ref}",
        "transfer_out": "VIR SEPA EMIS /BEN {name} /REF {ref}",
    },
    merchants=(
        M("Carrefour City", "CARREFOUR CITY PARIS 11", "grocery", 600, 6000, 6),
        M("Monoprix", "MONOPRIX PARIS", "grocery", 800, 7000, 5),
        M("Franprix", "FRANPRIX 5123", "grocery", 400, 3500, 4),
        M("Picard", "PICARD SURGELES", "grocery", 1000, 5000, 2),
        M("Boulangerie Paul", "BOULANGERIE PAUL", "dining", 200, 1200, 5),
        M("Uber Eats", "UBER EATS PARIS", "dining", 1500, 4500, 3),
        M("Deliveroo", "DELIVEROO FR", "dining", 1500, 4500, 2),
        M("Brasserie Le Zinc", "BRASSERIE LE ZINC", "dining", 1800, 6500, 2),
        M("RATP", "RATP NAVIGO", "transport", 215, 8640, 4),
        M("SNCF", "SNCF INTERNET", "transport", 2000, 12000, 2),
        M("Uber", "UBER *TRIP HELP.UBER.COM", "transport", 900, 3500, 2),
        M("TotalEnergies", "TOTALENERGIES RELAIS", "fuel", 3000, 8000, 2),
        M("Amazon", "AMAZON PAYMENTS", "shopping", 800, 9000, 4),
        M("Fnac", "FNAC PARIS", "shopping", 1500, 20000, 1),
        M("Pharmacie du Marché", "PHARMACIE DU MARCHE", "health", 400, 3500, 2),
        M("UGC", "UGC CINE CITE", "entertainment", 900, 2500, 1),
        M("Coiffeur Saint-Germain", "COIFFEUR ST GERMAIN", "care", 2500, 6000, 1),
        M("Air France", "AIR FRANCE", "travel", 9000, 50000, 1),
    ),
    bills=(
        Bill(10, "EDF", "PRLV SEPA EDF CLIENTS PARTICULIERS REF {ref}", 5000, 9000),
        Bill(15, "Orange", "PRLV SEPA ORANGE SA INTERNET {m:%m/%Y}", 3999, 4999),
        Bill(18, "Free Mobile", "PRLV SEPA FREE MOBILE {ref}", 1999, 1999),
        Bill(20, "Eau de Paris", "PRLV SEPA EAU DE PARIS {m:%m/%Y}", 2500, 4000),
    ),
)

US = Locale(
    country="US",
    factor=1.1,
    salary=480_000,
    rent=170_000,
    employer="ACME CORP",
    landlord="OAKWOOD APARTMENTS LLC",
    holders=("John Smith", "Emily Johnson", "Michael Brown", "Sarah Davis"),
    people=("Chris Miller", "Jessica Wilson", "David Moore", "Ashley Taylor"),
    card_text="DEBIT CARD PURCHASE {d} {stmt} CARD {last4}",
    card_date="%m/%d",
    texts={
        "salary": "{employer} PAYROLL DIRECT DEP PPD ID {ref}",
        "rent": "ZELLE PAYMENT TO {landlord} RENT {m:%m/%Y}",
        "savings_out": "ONLINE TRANSFER TO SAV ...{last4} CONF# {ref}",
        "savings_in": "ONLINE TRANSFER FROM CHK CONF# {ref}",
        "repayment_out": "CREDIT CARD AUTOPAY PAYMENT ...{last4}",
        "repayment_in": "AUTOPAY PAYMENT - THANK YOU",
        "fee": "MONTHLY SERVICE FEE",
        "interest": "INTEREST PAYMENT",
        "transfer_in": "ZELLE PAYMENT FROM {name} CONF# {ref}",
        "transfer_out": "ZELLE PAYMENT TO {name} CONF# {ref}",
    },
    merchants=(
        M("Whole Foods", "WHOLEFDS SFO 10234 SAN FRANCISCO CA", "grocery", 1500, 12000, 5),
        M("Trader Joe's", "TRADER JOE S #236 SAN FRANCISCO CA", "grocery", 1500, 9000, 5),
        M("Safeway", "SAFEWAY #1490 SAN FRANCISCO CA", "grocery", 1000, 9000, 4),
        M("Starbucks", "STARBUCKS STORE 05711 SAN FRANCISCO CA", "dining", 350, 1200, 6),
        M("Chipotle", "CHIPOTLE 1921 SAN FRANCISCO CA", "dining", 1000, 2200, 3),
        M("DoorDash", "DOORDASH*DASHPASS SAN FRANCISCO CA", "dining", 1800, 6000, 3),
        M("Uber", "UBER *TRIP HELP.UBER.COM CA", "transport", 900, 4500, 4),
        M("Lyft", "LYFT *RIDE SAN FRANCISCO CA", "transport", 900, 4000, 2),
        M("Shell", "SHELL OIL 57442 SAN FRANCISCO CA", "fuel", 3000, 8000, 2),
        M("Chevron", "CHEVRON 0094 SAN FRANCISCO CA", "fuel", 3000, 8000, 2),
        M("Amazon", "AMAZON.COM*2K4L AMZN.COM/BILL WA", "shopping", 1000, 15000, 5),
        M("Target", "TARGET 00032 SAN FRANCISCO CA", "shopping", 1000, 12000, 3),
        M("CVS Pharmacy", "CVS/PHARMACY #9887 SAN FRANCISCO CA", "health", 500, 4000, 2),
        M("Planet Fitness", "PLANET FITNESS CLUB FEES", "health", 1000, 2500, 1),
        M("AMC Theatres", "AMC 1000 VAN NESS SAN FRANCISCO CA", "entertainment", 1200, 4000, 1),
        M("Petco", "PETCO 1234 SAN FRANCISCO CA", "pets", 1500, 6000, 1),
        M("United Airlines", "UNITED AIRLINES 0162349876 HOUSTON TX", "travel", 15000, 60000, 1),
        M("Marriott", "MARRIOTT HOTELS CHICAGO IL", "travel", 15000, 50000, 1),
    ),
    bills=(
        Bill(10, "PG&E", "PGANDE WEB ONLINE ID {ref}", 6000, 15000),
        Bill(15, "Comcast", "COMCAST CABLE COMM 800-266-2278 CA", 6999, 8999),
        Bill(18, "Verizon", "VZWRLSS*APOCC VISB 800-922-0204 FL", 5500, 8000),
        Bill(20, "SF Water", "SF PUBLIC UTILITIES WATER {ref}", 3000, 6000),
    ),
)

GB = Locale(
    country="GB",
    factor=0.9,
    salary=310_000,
    rent=135_000,
    employer="ACME UK LTD",
    landlord="FOXTONS LETTINGS",
    holders=("Oliver Smith", "Amelia Jones", "Harry Taylor", "Isla Williams"),
    people=("George Brown", "Olivia Evans", "Jack Wilson", "Emily Thomas"),
    card_text="CARD PAYMENT TO {stmt} ON {d} CARD {last4}",
    card_date="%d-%m-%Y",
    texts={
        "salary": "BACS CREDIT {employer} SALARY {m:%b %Y}",
        "rent": "STANDING ORDER {landlord} RENT {m:%b %Y}",
        "savings_out": "TRANSFER TO SAVINGS ACCOUNT REF {ref}",
        "savings_in": "TRANSFER FROM CURRENT ACCOUNT REF {ref}",
        "repayment_out": "CREDIT CARD PAYMENT {last4}",
        "repayment_in": "PAYMENT RECEIVED - THANK YOU",
        "fee": "MONTHLY ACCOUNT FEE",
        "interest": "GROSS INTEREST",
        "transfer_in": "FASTER PAYMENT FROM {name} REF {ref}",
        "transfer_out": "FASTER PAYMENT TO {name} REF {ref}",
    },
    merchants=(
        M("Tesco", "TESCO STORES 3221 LONDON GB", "grocery", 800, 8000, 6),
        M("Sainsbury's", "SAINSBURYS S/MKTS LONDON GB", "grocery", 800, 8000, 5),
        M("Pret A Manger", "PRET A MANGER LONDON GB", "dining", 350, 1200, 5),
        M("Greggs", "GREGGS PLC LONDON GB", "dining", 200, 800, 3),
        M("Deliveroo", "DELIVEROO LONDON GB", "dining", 1500, 4500, 3),
        M("TfL", "TFL TRAVEL CH TFL.GOV.UK/CP GB", "transport", 280, 1500, 7),
        M("Uber", "UBER *TRIP HELP.UBER.COM", "transport", 900, 3500, 2),
        M("Trainline", "TRAINLINE.COM LONDON GB", "transport", 2000, 12000, 1),
        M("Shell", "SHELL KINGS CROSS LONDON GB", "fuel", 3000, 8000, 2),
        M("Amazon", "AMAZON.CO.UK*2K4L AMAZON.CO.UK", "shopping", 800, 9000, 4),
        M("Argos", "ARGOS LTD LONDON GB", "shopping", 1000, 12000, 1),
        M("Boots", "BOOTS 1142 LONDON GB", "health", 300, 3000, 3),
        M("PureGym", "PUREGYM LTD LEEDS GB", "health", 2499, 2499, 1),
        M("Odeon", "ODEON CINEMAS LONDON GB", "entertainment", 1100, 3000, 1),
        M("Pets at Home", "PETS AT HOME LONDON GB", "pets", 1000, 5000, 1),
        M("British Airways", "BRITISH AIRWAYS LONDON GB", "travel", 9000, 50000, 1),
    ),
    bills=(
        Bill(1, "Camden Council", "DIRECT DEBIT LB CAMDEN COUNCIL TAX {ref}", 14500, 16500),
        Bill(10, "British Gas", "DIRECT DEBIT BRITISH GAS {ref}", 6000, 11000),
        Bill(15, "BT", "DIRECT DEBIT BT GROUP PLC {ref}", 3500, 4500),
        Bill(20, "Thames Water", "DIRECT DEBIT THAMES WATER {ref}", 3000, 4500),
    ),
)

MY = Locale(
    country="MY",
    factor=2.5,
    salary=550_000,
    rent=150_000,
    employer="SYARIKAT CONTOH SDN BHD",
    landlord="TAN AH KOW",
    holders=("AHMAD BIN ISMAIL", "NUR AISYAH BINTI RAHMAN", "LIM WEI JIE", "PRIYA A/P KUMAR"),
    people=("MUHAMMAD HAFIZ", "SITI NORHALIZA", "TAN CHEE KEONG", "RAJESH A/L MOHAN"),
    card_text="DEBIT CARD PURCHASE {stmt} MY {d} CARD {last4}",
    card_date="%d/%m/%y",
    texts={
        "salary": "GAJI {m:%m/%Y} {employer}",
        "rent": "DUITNOW TRANSFER SEWA RUMAH {m:%m/%Y} {landlord}",
        "savings_out": "TRANSFER TO SAVINGS REF {ref}",
        "savings_in": "TRANSFER FROM CURRENT ACCOUNT REF {ref}",
        "repayment_out": "CREDIT CARD PAYMENT {last4}",
        "repayment_in": "PAYMENT RECEIVED THANK YOU",
        "fee": "SERVICE CHARGE {m:%m/%Y}",
        "interest": "HIBAH/INTEREST CREDIT",
        "transfer_in": "DUITNOW TRANSFER FROM {name} {ref}",
        "transfer_out": "DUITNOW TRANSFER TO {name} {ref}",
    },
    merchants=(
        M("Grab", "GRAB*RIDE KUALA LUMPUR", "transport", 200, 1200, 7),
        M("GrabFood", "GRABFOOD KUALA LUMPUR", "dining", 400, 1800, 4),
        M("foodpanda", "FOODPANDA MALAYSIA", "dining", 400, 1800, 3),
        M("Tealive", "TEALIVE MID VALLEY", "dining", 200, 500, 4),
        M("Starbucks", "STARBUCKS KLCC", "dining", 400, 900, 2),
        M("Petronas", "PETRONAS SS2 PETALING JAYA", "fuel", 1000, 3000, 3),
        M("Shell", "SHELL DAMANSARA", "fuel", 1000, 3000, 2),
        M("Touch 'n Go", "TNG EWALLET RELOAD", "transport", 400, 2000, 2),
        M("99 Speedmart", "99 SPEEDMART 1234", "grocery", 300, 2500, 5),
        M("Jaya Grocer", "JAYA GROCER BANGSAR", "grocery", 1000, 8000, 3),
        M("Mydin", "MYDIN MART USJ", "grocery", 800, 6000, 3),
        M("Shopee", "SHOPEE MALAYSIA", "shopping", 500, 8000, 4),
        M("Lazada", "LAZADA MALAYSIA", "shopping", 500, 8000, 2),
        M("Watsons", "WATSONS PERSONAL CARE", "care", 300, 3000, 2),
        M("Guardian", "GUARDIAN PHARMACY", "health", 300, 3000, 2),
        M("GSC", "GSC MID VALLEY", "entertainment", 500, 1500, 1),
        M("AirAsia", "AIRASIA BERHAD SEPANG", "travel", 3000, 20000, 1),
    ),
    bills=(
        Bill(10, "TNB", "TENAGA NASIONAL BHD BIL {ref}", 3000, 8000),
        Bill(15, "Unifi", "TM UNIFI BIL {m:%m/%Y}", 3600, 4400),
        Bill(18, "Maxis", "MAXIS BROADBAND POSTPAID {ref}", 1800, 3200),
        Bill(20, "Air Selangor", "AIR SELANGOR BIL {ref}", 800, 1800),
    ),
)

LOCALES = {locale.country: locale for locale in (VN, DE, FR, US, GB, MY)}

#: currencies whose amounts have no minor unit (ISO 4217 exponent 0)
ZERO_DECIMAL_CURRENCIES = frozenset({"VND", "JPY", "KRW", "CLP", "ISK", "PYG", "UGX", "XAF", "XOF"})


def locale_for(country_code: str) -> Locale:
    """The statement style of ``country_code``; unknown countries write like US banks."""
    return LOCALES.get(country_code.upper(), US)
