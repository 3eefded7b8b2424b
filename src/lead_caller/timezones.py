"""Where a lead is: its country (for reading national numbers) and its time zone(s).

Country: a name ("India", "United States", "South Korea"), an ISO 3166-1 alpha-2
("IN") or alpha-3 ("IND") code, folded for case, accents and punctuation.

Time zone, first rule that decides (recorded as `timezone_rule`):

1. `crm_field`: an explicit IANA zone in the record (HubSpot's `hs_timezone`, whose values
   look like `america_slash_new_york`, is understood too);
2. `address`: the country when it has one zone, or its state/province for the countries
   with several (US, CA, AU, BR, MX, RU built in);
3. `phone`: the zones libphonenumber (the full `phonenumbers` package) gives the number's
   prefix, kept within the country's zones when the country is known;
4. `address` again when only the country is known: all of its zones;
5. `default`: the route's default zone.

When a rule leaves several zones (a US state split by a zone line, a mobile number valid
country-wide) all of them are kept: the calling policy then only calls when every one of
them is inside its window, which errs on the side of not calling at a bad hour.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from phonenumbers import timezone as phone_timezones

from lead_caller.countrydata import COUNTRIES, SUBDIVISIONS

#: Extra spellings people and CRMs use for countries (folded like the ISO names).
_COUNTRY_ALIASES: dict[str, str] = {
    "usa": "US",
    "unitedstatesofamerica": "US",
    "america": "US",
    "uk": "GB",
    "greatbritain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northernireland": "GB",
    "russia": "RU",
    "southkorea": "KR",
    "korea": "KR",
    "northkorea": "KP",
    "vietnam": "VN",
    "iran": "IR",
    "syria": "SY",
    "laos": "LA",
    "bolivia": "BO",
    "venezuela": "VE",
    "tanzania": "TZ",
    "moldova": "MD",
    "czechia": "CZ",
    "czechrepublic": "CZ",
    "turkey": "TR",
    "turkiye": "TR",
    "holland": "NL",
    "thenetherlands": "NL",
    "uae": "AE",
    "emirates": "AE",
    "ivorycoast": "CI",
    "drc": "CD",
    "drcongo": "CD",
    "capeverde": "CV",
    "swaziland": "SZ",
    "burma": "MM",
    "macedonia": "MK",
    "palestine": "PS",
    "taiwan": "TW",
    "brunei": "BN",
    "micronesia": "FM",
    "vatican": "VA",
}


def _each(codes: str, zones: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return dict.fromkeys(codes.split(), zones)


#: Zones of the states/provinces of countries that span several zones, by ISO 3166-2 code
#: (without the country prefix). The first zone is the main one; a subdivision crossed by a
#: zone line lists every zone it has, so calls are placed only when all are in their window.
_SUBDIVISION_ZONES: dict[str, dict[str, tuple[str, ...]]] = {
    "US": {
        **_each(
            "CT DE DC GA ME MD MA NH NJ NY NC OH PA RI SC VT VA WV",
            ("America/New_York",),
        ),
        "FL": ("America/New_York", "America/Chicago"),
        "IN": ("America/Indiana/Indianapolis", "America/Chicago"),
        "KY": ("America/New_York", "America/Chicago"),
        "MI": ("America/Detroit", "America/Menominee"),
        "TN": ("America/Chicago", "America/New_York"),
        **_each("AL AR IL IA LA MN MS MO OK WI", ("America/Chicago",)),
        **_each("TX KS NE ND SD", ("America/Chicago", "America/Denver")),
        **_each("CO MT NM UT WY", ("America/Denver",)),
        "ID": ("America/Boise", "America/Los_Angeles"),
        "OR": ("America/Los_Angeles", "America/Boise"),
        "AZ": ("America/Phoenix",),
        **_each("CA NV WA", ("America/Los_Angeles",)),
        "AK": ("America/Anchorage", "America/Adak"),
        "HI": ("Pacific/Honolulu",),
        "PR": ("America/Puerto_Rico",),
        "VI": ("America/St_Thomas",),
        "GU": ("Pacific/Guam",),
        "AS": ("Pacific/Pago_Pago",),
        "MP": ("Pacific/Saipan",),
    },
    "CA": {
        "BC": ("America/Vancouver",),
        "AB": ("America/Edmonton",),
        "SK": ("America/Regina",),
        "MB": ("America/Winnipeg",),
        "ON": ("America/Toronto", "America/Winnipeg"),
        "QC": ("America/Toronto",),
        "NB": ("America/Moncton",),
        "NS": ("America/Halifax",),
        "PE": ("America/Halifax",),
        "NL": ("America/St_Johns", "America/Goose_Bay"),
        "YT": ("America/Whitehorse",),
        "NT": ("America/Yellowknife",),
        "NU": ("America/Iqaluit", "America/Rankin_Inlet", "America/Cambridge_Bay"),
    },
    "AU": {
        "NSW": ("Australia/Sydney", "Australia/Broken_Hill"),
        "ACT": ("Australia/Sydney",),
        "VIC": ("Australia/Melbourne",),
        "QLD": ("Australia/Brisbane",),
        "SA": ("Australia/Adelaide",),
        "WA": ("Australia/Perth",),
        "TAS": ("Australia/Hobart",),
        "NT": ("Australia/Darwin",),
    },
    "BR": {
        **_each("SP RJ MG ES PR SC RS GO DF", ("America/Sao_Paulo",)),
        "BA": ("America/Bahia",),
        **_each("CE PI MA RN PB", ("America/Fortaleza",)),
        "PE": ("America/Recife",),
        **_each("AL SE", ("America/Maceio",)),
        **_each("PA AP", ("America/Belem",)),
        "TO": ("America/Araguaina",),
        "MT": ("America/Cuiaba",),
        "MS": ("America/Campo_Grande",),
        "RO": ("America/Porto_Velho",),
        "RR": ("America/Boa_Vista",),
        "AM": ("America/Manaus", "America/Eirunepe"),
        "AC": ("America/Rio_Branco",),
    },
    "MX": {
        "BCN": ("America/Tijuana",),
        **_each("BCS SIN", ("America/Mazatlan",)),
        "NAY": ("America/Mazatlan", "America/Bahia_Banderas"),
        "SON": ("America/Hermosillo",),
        "CHH": ("America/Chihuahua", "America/Ciudad_Juarez", "America/Ojinaga"),
        "ROO": ("America/Cancun",),
        **_each("NLE COA DUR", ("America/Monterrey",)),
        "TAM": ("America/Matamoros", "America/Monterrey"),
        **_each("YUC CAM", ("America/Merida",)),
        **_each(
            "AGU CHP CMX COL GRO GUA HID JAL MEX MIC MOR OAX PUE QUE SLP TAB TLA VER ZAC",
            ("America/Mexico_City",),
        ),
    },
    "RU": {
        "KGD": ("Europe/Kaliningrad",),
        **_each("SAM UD", ("Europe/Samara",)),
        "ULY": ("Europe/Ulyanovsk",),
        "AST": ("Europe/Astrakhan",),
        "SAR": ("Europe/Saratov",),
        "VGG": ("Europe/Volgograd",),
        "KIR": ("Europe/Kirov",),
        **_each("SVE CHE KGN TYU KHM YAN PER ORE BA", ("Asia/Yekaterinburg",)),
        "OMS": ("Asia/Omsk",),
        "NVS": ("Asia/Novosibirsk",),
        **_each("ALT AL", ("Asia/Barnaul",)),
        "TOM": ("Asia/Tomsk",),
        "KEM": ("Asia/Novokuznetsk",),
        **_each("KYA KK TY", ("Asia/Krasnoyarsk",)),
        **_each("IRK BU", ("Asia/Irkutsk",)),
        "ZAB": ("Asia/Chita",),
        "SA": ("Asia/Yakutsk", "Asia/Vladivostok", "Asia/Srednekolymsk"),
        "AMU": ("Asia/Yakutsk",),
        **_each("PRI KHA YEV", ("Asia/Vladivostok",)),
        "SAK": ("Asia/Sakhalin",),
        "MAG": ("Asia/Magadan",),
        "KAM": ("Asia/Kamchatka",),
        "CHU": ("Asia/Anadyr",),
    },
}
#: Russia's other subjects (European Russia) are on Moscow time.
_SUBDIVISION_DEFAULT = {"RU": ("Europe/Moscow",)}
#: English names of Russian subjects people write instead of the ISO transliteration.
_SUBDIVISION_ALIASES = {
    "RU": {"moscow": "MOW", "saintpetersburg": "SPE", "stpetersburg": "SPE", "moscowoblast": "MOS", "yakutia": "SA"},
}
_RU_SUFFIXES = ("oblast", "kray", "krai", "respublika", "republic", "avtonomnyyokrug", "avtonomnayaoblast")


def fold(text: str) -> str:
    """Lower-case letters and digits only, accents removed: "São Paulo" -> "saopaulo"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed.lower() if ch.isalnum() and not unicodedata.combining(ch))


@lru_cache(maxsize=1)
def _country_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for alpha2, alpha3, names in COUNTRIES:
        index[alpha2.lower()] = alpha2
        index[alpha3.lower()] = alpha2
        for name in names:
            index.setdefault(fold(name), alpha2)
            if "," in name:  # "Korea, Republic of" -> also "Republic of Korea"-less "Korea"
                index.setdefault(fold(name.split(",")[0]), alpha2)
    for alias, alpha2 in _COUNTRY_ALIASES.items():
        index.setdefault(alias, alpha2)
    return index


def country_code(value: str | None) -> str | None:
    """The ISO alpha-2 code of a country name or code, or None when it is not one."""
    if not value:
        return None
    key = fold(str(value))
    if not key:
        return None
    code = _country_index().get(key)
    if code is None and key.startswith("the"):
        code = _country_index().get(key[3:])
    return code


@lru_cache(maxsize=1)
def _zones_by_country() -> dict[str, tuple[str, ...]]:
    """Country -> its IANA zones, from tzdata's zone.tab (the `tzdata` package ships it)."""
    zones: dict[str, list[str]] = {}
    try:
        text = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):  # pragma: no cover - tzdata is a dependency
        with open("/usr/share/zoneinfo/zone.tab", encoding="utf-8") as handle:
            text = handle.read()
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) >= 3:
            zones.setdefault(parts[0], []).append(parts[2])
    return {country: tuple(names) for country, names in zones.items()}


def country_zones(country: str) -> tuple[str, ...]:
    """The IANA zones of a country (ISO alpha-2) that keep different clocks, () when unknown.

    Zones whose clocks agree now (Europe/Busingen and Europe/Berlin) count as one.
    """
    distinct: dict[str, str] = {}
    for zone in _zones_by_country().get(country.upper(), ()):
        distinct.setdefault(_canonical(zone), zone)
    return tuple(distinct.values())


@lru_cache(maxsize=1)
def _zone_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for name in available_timezones():
        index["/".join(fold(part) for part in name.split("/"))] = name
    return index


@lru_cache(maxsize=1)
def _iana_names() -> frozenset[str]:
    """The zone names tzdata lists (its `zones` file): read in well under a millisecond, where
    `_zone_index` walks the zone folders and folds ~600 names (~20 ms of every cold start, since
    the settings check the calling policy's zone at INIT)."""
    try:
        return frozenset(resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split())
    except (ModuleNotFoundError, FileNotFoundError):  # pragma: no cover - tzdata is a dependency
        return frozenset()


def zone_name(value: str | None) -> str | None:
    """A valid IANA zone name for a CRM's time-zone value, or None.

    Accepts "America/New_York", "america/new_york", HubSpot's "america_slash_new_york",
    and "UTC"/"GMT". A name spelled exactly as tzdata lists it is that zone (without building
    the folded index; also the only sound answer for "Etc/GMT+5", which folds like "Etc/GMT-5").
    """
    if not value:
        return None
    text = str(value).strip().replace("_slash_", "/")
    if not text:
        return None
    if text in _iana_names():
        return text if _loads(text) else None
    key = "/".join(fold(part) for part in text.split("/"))
    name = _zone_index().get(key)
    if name is None:
        return None
    return name if _loads(name) else None


def _loads(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def subdivision_zones(country: str, state: str | None) -> tuple[str, ...]:
    """The zones of a state/province (code like "CA", "US-CA" or a name), () when unknown."""
    table = _SUBDIVISION_ZONES.get(country)
    if table is None or not state:
        return ()
    code = _subdivision_code(country, state)
    if code is None:
        return ()
    return table.get(code) or _SUBDIVISION_DEFAULT.get(country) or ()


def _subdivision_code(country: str, state: str) -> str | None:
    text = state.strip().upper()
    if text.startswith(f"{country}-"):
        text = text[len(country) + 1 :]
    names = SUBDIVISIONS.get(country, {})
    if text in names:
        return text
    key = fold(state)
    aliases = _SUBDIVISION_ALIASES.get(country, {})
    if key in aliases:
        return aliases[key]
    for code, name in names.items():
        folded = fold(name)
        if key == folded or key == fold(name.split(",")[0]):
            return code
    if country == "RU":  # "Sverdlovsk Oblast", "Sverdlovskaya oblast'": compare the stems
        stem = _ru_stem(key)
        for code, name in names.items():
            if stem and _ru_stem(fold(name.split(",")[0])) == stem:
                return code
    return None


def _ru_stem(key: str) -> str:
    for suffix in _RU_SUFFIXES:
        key = key.replace(suffix, "")
    for ending in ("skaya", "skiy", "skii", "sk", "aya", "iy"):
        if key.endswith(ending) and len(key) > len(ending) + 2:
            return key[: -len(ending)]
    return key


def phone_zones(e164: str) -> tuple[str, ...]:
    """The zones libphonenumber gives a number's prefix ("Etc/Unknown" left out)."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ()
    found = phone_timezones.time_zones_for_number(number)
    return tuple(zone for zone in (zone_name(name) for name in found if name != "Etc/Unknown") if zone)


def phone_country(e164: str) -> str | None:
    """The region (ISO alpha-2) of an E.164 number, or None."""
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return None
    return region if region and region != "ZZ" else None


@dataclass(frozen=True)
class LeadZone:
    """The zone(s) a lead is in and the rule that decided."""

    zones: tuple[str, ...]
    rule: str  # crm_field | address | phone | default

    @property
    def name(self) -> str:
        """The main zone (the one schedules are written in)."""
        return self.zones[0]


def lead_zone(
    timezone_value: str | None,
    country: str | None,
    state: str | None,
    e164: str | None,
    default_zone: str,
) -> LeadZone:
    """Apply the rules of the module docstring, in order."""
    explicit = zone_name(timezone_value)
    if explicit:
        return LeadZone((explicit,), "crm_field")
    zones_of_country = country_zones(country) if country else ()
    if len(zones_of_country) == 1:
        return LeadZone(zones_of_country, "address")
    if country:
        by_state = _valid(subdivision_zones(country, state))
        if by_state:
            return LeadZone(by_state, "address")
    if e164:
        reference = zones_of_country or _valid(country_zones(phone_country(e164) or ""))
        by_phone = _valid(phone_zones(e164))
        if reference:  # prefer the country's own names (libphonenumber has some old aliases)
            by_key = {_canonical(zone): zone for zone in reversed(reference)}
            by_phone = tuple(dict.fromkeys(by_key[key] for key in map(_canonical, by_phone) if key in by_key))
        if by_phone:
            return LeadZone(by_phone, "phone")
        if not country and reference:
            return LeadZone(reference, "phone")
    if zones_of_country:
        return LeadZone(_valid(zones_of_country), "address")
    return LeadZone((default_zone,), "default")


def _valid(zones: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(zone for zone in zones if _loads(zone)))


@lru_cache(maxsize=512)
def _canonical(zone: str) -> str:
    """A key shared by a zone and its backward-compatible alias (Asia/Calcutta = Asia/Kolkata)."""
    try:
        info = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return zone
    # Two names of one zone (or two zones that keep the same clock now) agree on every offset:
    # sample this year and the next twice a month, which catches every DST rule difference.
    year = datetime.now(UTC).year
    samples = [datetime(y, m, d, 12, tzinfo=UTC) for y in (year, year + 1) for m in range(1, 13) for d in (1, 15)]
    return "|".join(str(moment.astimezone(info).utcoffset()) for moment in samples)
