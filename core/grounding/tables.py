"""The word lists and unit table the grounding check reads (data only, no logic).

Everything here is matched case-insensitively after NFKC normalisation of the token.
"""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Month names (and common abbreviations) → month number, in the languages the check reads dates in:
#: English, French, German, Spanish, Italian, Portuguese, Dutch and Russian (genitive, as in dates).
MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        "january jan janvier januar jänner enero gennaio janeiro januari января",
        "february feb février fevrier februar febrero febbraio fevereiro februari февраля",
        "march mar mars märz maerz marzo março marco maart марта",
        "april apr avril abril aprile апреля",
        "may mai mayo maggio maio mei мая",
        "june jun juin juni junio giugno junho июня",
        "july jul juillet juli julio luglio julho июля",
        "august aug août aout agosto augustus августа",
        "september sep sept septembre septiembre setiembre settembre setembro сентября",
        "october oct octobre oktober octubre ottobre outubro октября",
        "november nov novembre noviembre novembro ноября",
        "december dec décembre decembre dezember diciembre dicembre dezembro декабря",
    ),
    start=1,
):
    for _name in _names.split():
        MONTHS[_name] = _number

#: Scale words after a number: ``1.2 million``, ``3 Mio.``, ``120万``.
MULTIPLIERS: dict[str, float] = {}
for _factor, _names in (
    (1e3, "thousand thousands k tsd tsd. mille mil тыс тыс. 千"),
    (1e4, "万 萬"),
    (
        1e6,
        "million millions mn mio mio. millionen millón millones milione milioni milhão milhões млн млн. 百万",
    ),
    (1e8, "亿 億"),
    (
        1e9,
        "billion billions bn mrd mrd. milliard milliards milliarde milliarden miliardo miliardi млрд млрд.",
    ),
    (1e12, "trillion trillions billionen 兆 万亿"),
):
    for _name in _names.split():
        MULTIPLIERS[_name] = _factor

#: Unit surface form → (dimension, factor to the dimension's base unit). Currencies are dimensions of
#: their own with factor 1 (no exchange rates); temperatures too (no conversion between scales).
UNITS: dict[str, tuple[str, float]] = {}
for _dim, _factor, _names in (
    (
        "length",
        1.0,
        "m metre metres meter meters mètre mètres metro metros metri metern 米 公尺 メートル "
        "м метр метра метров",
    ),
    (
        "length",
        1e3,
        "km kilometre kilometres kilometer kilometers kilomètre kilomètres kilómetro kilómetros "
        "chilometri kilometern 公里 千米 キロメートル км",
    ),
    ("length", 1e-2, "cm centimetre centimetres centimeter centimeters 厘米 см"),
    ("length", 1e-3, "mm millimetre millimetres millimeter millimeters 毫米 мм"),
    ("length", 1609.344, "mi mile miles meile meilen"),
    ("length", 0.3048, "ft foot feet fuß"),
    ("length", 0.0254, "inch inches zoll"),
    ("length", 0.9144, "yd yard yards"),
    ("mass", 1.0, "g gram grams gramme grammes gramm gramos grammi 克 г"),
    ("mass", 1e3, "kg kilogram kilograms kilogramme kilogrammes kilogramm kilo kilos 公斤 千克 кг"),
    ("mass", 1e-3, "mg milligram milligrams milligramm"),
    ("mass", 1e6, "t tonne tonnes ton tons tonnen tonelada toneladas 吨 т"),
    ("mass", 453.59237, "lb lbs"),
    ("time", 1.0, "s sec secs second seconds sekunde sekunden seconde secondes segundo segundos secondi 秒"),
    ("time", 1e-3, "ms millisecond milliseconds millisekunden"),
    ("time", 60.0, "min mins minute minutes minuten minuto minutos minuti 分钟"),
    ("time", 3600.0, "h hr hrs hour hours stunde stunden heure heures hora horas ore 小时 時間"),
    ("time", 86400.0, "day days tag tage tagen jour jours día días giorni 天"),
    ("time", 604800.0, "week weeks woche wochen semaine semaines semana semanas settimane"),
    ("time", 2629800.0, "month months monat monate monaten mois mes meses mesi 个月"),
    ("time", 31557600.0, "year years jahr jahre jahren année années año años anno anni лет года"),
    ("percent", 1.0, "% percent per_cent prozent pour_cent por_ciento per_cento процентов процента процент"),
    ("celsius", 1.0, "°c ℃ degrees_celsius grad_celsius"),
    ("fahrenheit", 1.0, "°f ℉ degrees_fahrenheit"),
    ("data", 1.0, "b byte bytes"),
    ("data", 1e3, "kb kilobyte kilobytes"),
    ("data", 1e6, "mb megabyte megabytes"),
    ("data", 1e9, "gb gigabyte gigabytes"),
    ("data", 1e12, "tb terabyte terabytes"),
    ("data", 1024.0, "kib"),
    ("data", 1048576.0, "mib"),
    ("data", 1073741824.0, "gib"),
    ("frequency", 1.0, "hz hertz"),
    ("frequency", 1e3, "khz"),
    ("frequency", 1e6, "mhz"),
    ("frequency", 1e9, "ghz"),
    ("power", 1.0, "w watt watts"),
    ("power", 1e3, "kw kilowatt kilowatts"),
    ("power", 1e6, "mw megawatt megawatts"),
    ("power", 1e9, "gw gigawatt gigawatts"),
    ("energy", 3.6e6, "kwh"),
    ("speed", 1.0, "m/s"),
    ("speed", 1 / 3.6, "km/h kph"),
    ("speed", 0.44704, "mph"),
    ("area", 1.0, "m² m2 sq_m"),
    ("area", 1e6, "km² km2"),
    ("area", 1e4, "ha hectare hectares hektar"),
    ("volume", 1.0, "l litre litres liter liters"),
    ("volume", 1e-3, "ml millilitre millilitres milliliter milliliters"),
    ("USD", 1.0, "$ us$ usd dollar dollars dólares"),
    ("EUR", 1.0, "€ eur euro euros"),
    ("GBP", 1.0, "£ gbp"),
    ("YEN", 1.0, "¥ jpy yen 円"),
    ("CNY", 1.0, "cny rmb yuan 元"),
    ("INR", 1.0, "₹ inr rupee rupees"),
    ("CHF", 1.0, "chf"),
):
    for _name in _names.split():
        UNITS[_name.replace("_", " ")] = (_dim, _factor)

#: Currency signs and codes written before the amount (``$5``, ``EUR 5``).
PREFIX_CURRENCIES = ("us$", "$", "€", "£", "¥", "₹", "usd", "eur", "gbp", "chf", "jpy", "cny")

#: Small number words (documents only: a document's "three" supports an evidence's "3").
NUMBER_WORDS: dict[str, int] = {}
for _value, _names in enumerate(
    (
        "zero null zéro cero",
        "one eins un une uno",
        "two zwei deux dos due",
        "three drei trois tres tre",
        "four vier quatre cuatro quattro",
        "five fünf cinq cinco cinque",
        "six sechs seis sei",
        "seven sieben sept siete sette",
        "eight acht huit ocho otto",
        "nine neun neuf nueve nove",
        "ten zehn dix diez dieci",
        "eleven elf onze once undici",
        "twelve zwölf douze doce dodici",
    )
):
    for _name in _names.split():
        NUMBER_WORDS[_name] = _value
NUMBER_WORDS.update({"dozen": 12, "hundred": 100, "hundert": 100, "cent": 100, "cien": 100, "cento": 100})

#: Short function words that are not content (the support score ignores them). A small list per
#: language; words of one or two letters are ignored anyway.
STOPWORDS = _words(
    """
    the and for are was were that this with from have has had not but its into than then also
    been which who whom whose what when where why how all any can may will would should could
    about over under there their they them these those such only very more most other some our
    your his her und der die das den dem des ein eine einer eines einem ist sind war waren mit
    von für auf aus bei nicht auch wie als oder aber zum zur dass sich les des une est sont dans
    pour par sur avec pas que qui aux ces ses elle ils été los las una por con para del que son
    fue era como más sus gli della delle dei con per che sono una non
    """
)

#: Words that are ordinary even when capitalised mid-sentence (titles, weekdays, pronouns).
NOT_NAMES = _words(
    """
    i i'm i've mr mrs ms dr prof monday tuesday wednesday thursday friday saturday sunday it its
    he she we you they a an in on at as by to of is if or so no yes there here
    """
)

#: Frequent German function words: a document where they are common capitalises every noun, so a
#: capital there does not mark a name.
GERMAN_MARKERS = _words(
    """
    der die das den dem des und ist nicht mit von ein eine einer einem eines sich auch wurde
    werden sind für auf bei zu im zum zur dass wird war
    """
)
