"""The pricing enforcer: an AI reply may not quote a price outside the organization's own
price ranges (`PriceRule`, per appointment type or product).

`pricing_guard(organization=, text=)` finds every quoted amount in a reply, works out which
offer it is about, and compares it with that offer's range:

- an amount counts only with a currency marker: a symbol (`$150`, `US$150`, `€99`, `£40`),
  a code (`USD 150`, `150 EUR`), a currency word (`150 dollars`, `a hundred bucks`,
  `forty-five quid`), including `k` (`$1.5k`), thousands and decimal separators (`1,200.50`,
  `1.200,50 €`) and ranges (`$100-$150`, `$100 to 150`, `100-150 dollars`, `between $100 and
  $150`). Bare numbers (times, counts, percentages, phone numbers) are never prices;
- discounts, deposits, refunds and credits (`save $20`, `$50 off`, `a $25 deposit`) are not
  the offer's price and are skipped;
- the offer is the one named in the amount's clause (its name, its appointment type's name
  or slug, or a keyword), else the last one named earlier in the sentence with no "and",
  "but", "or", "while" or ";" in between, else (for the first clause of a sentence) the last
  one named in the previous sentence, else the caller's `appointment_type`. An amount about
  no identifiable offer must fall within at least one explicit rule's range;
- `$` means the organization's currency when that is a dollar currency, else USD; a quote in
  another currency than the offer's is a violation.

A violation of a `rewrite` rule replaces the quoted amount (or range) with the allowed
range (`$100-$150`, or `$150` when min = max); a `block` rule, or an amount whose offer is
unknown, blocks the reply. An appointment type with a `price` and no rule counts as a
`rewrite` rule priced exactly at it (it is not used for amounts about no offer).

`guard_pricing(ctx, actions, report)` applies it to the decision engine's proposed actions
(the shape of `apps.decisions.guard.GUARDS`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from apps.revenue.money import DOLLAR_CURRENCIES, format_price

# --- amounts ------------------------------------------------------------------------------------

_SYMBOLS = {
    "US$": "USD",
    "CA$": "CAD",
    "C$": "CAD",
    "AU$": "AUD",
    "A$": "AUD",
    "NZ$": "NZD",
    "€": "EUR",
    "£": "GBP",
    "¥": "JPY",
    "₹": "INR",
}
_CODES = ("USD", "EUR", "GBP", "CAD", "AUD", "NZD", "JPY", "INR", "CHF", "MXN", "SGD", "HKD")
_WORDS = {
    "dollar": "$",
    "dollars": "$",
    "buck": "$",
    "bucks": "$",
    "euro": "EUR",
    "euros": "EUR",
    "pound": "GBP",
    "pounds": "GBP",
    "quid": "GBP",
}
_SYMBOL_RE = r"(?:US\$|CA\$|C\$|AU\$|A\$|NZ\$|\$|€|£|¥|₹)"
_CODE_RE = "(?:" + "|".join(_CODES) + ")"
_WORD_CUR_RE = r"(?:dollars?|bucks?|euros?|pounds?|quid)"
_NUM_RE = r"(?:\d{1,3}(?:[,.]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?)(?!\d)"
_K_RE = r"(?:\s?[kK](?![a-zA-Z]))?"
_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_NUMBER_WORD_RE = "(?:" + "|".join(sorted(_UNITS, key=len, reverse=True)) + "|hundred|thousand)"
_WORDS_RE = rf"(?:\b(?:a|an|{_NUMBER_WORD_RE})\b(?:[\s-]+(?:and[\s-]+)?{_NUMBER_WORD_RE}\b)*)"

_AMOUNT_RE = re.compile(
    rf"(?P<sym>{_SYMBOL_RE})\s?(?P<n1>{_NUM_RE})(?P<k1>{_K_RE})"
    rf"|\b(?P<code>{_CODE_RE})\s?(?P<n2>{_NUM_RE})(?P<k2>{_K_RE})"
    rf"|(?<![\w.,])(?P<n3>{_NUM_RE})(?P<k3>{_K_RE})(?:\s?(?:(?P<code3>{_CODE_RE})\b|(?P<word3>{_WORD_CUR_RE})\b|(?P<sym3>€|£))|(?P<sym3b>\$))"
    rf"|(?P<words>{_WORDS_RE})\s+(?P<word4>{_WORD_CUR_RE})\b",
    re.IGNORECASE,
)  # fmt: skip
# "$100-150", "$100 to $150" (after an amount); "100-" before "150 dollars".
_RANGE_AFTER = re.compile(
    rf"\s*(?:-|\u2013|\u2014|to)\s*(?P<sym>{_SYMBOL_RE})?\s?(?P<n>{_NUM_RE})(?P<k>{_K_RE})"
    rf"(?:\s?(?:{_CODE_RE}\b|{_WORD_CUR_RE}\b|€|£))?",
    re.IGNORECASE,
)
_RANGE_BEFORE = re.compile(
    rf"(?P<n>{_NUM_RE})(?P<k>{_K_RE})\s*(?:-|\u2013|\u2014|to)\s*$", re.IGNORECASE
)
_BETWEEN = re.compile(r"\bbetween\s+$", re.IGNORECASE)
_NOT_PRICE_BEFORE = re.compile(
    r"\b(?:save|saves|saving|savings|discount|deposit|refund|refunded|credit|coupon|voucher|"
    r"rebate|tip)\b(?:\s+(?:of|up\s+to|an\s+extra|another))?\s*(?:a\s+|an\s+)?$",
    re.IGNORECASE,
)
_NOT_PRICE_AFTER = re.compile(
    r"^\s*(?:off|discount|deposit|refund|credit|coupon|voucher|rebate|cash\s*back|back|"
    r"gift\s+card|tip)s?\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Quote:
    """A price quoted in a text: its span, the amounts (two for a range) and currency."""

    text: str
    start: int
    end: int
    amounts: tuple[Decimal, ...]
    currency: str  # ISO code; "$" resolved to the organization's dollar currency
    style: str  # "single", "dash" or "between"


def _number(raw: str, k: str) -> Decimal | None:
    raw = raw.replace(" ", "")
    if "," in raw and "." in raw:
        decimal_at = max(raw.rfind(","), raw.rfind("."))
        integer = re.sub(r"[,.]", "", raw[:decimal_at])
        raw = f"{integer}.{raw[decimal_at + 1 :]}"
    elif "," in raw or "." in raw:
        sep = "," if "," in raw else "."
        parts = raw.split(sep)
        decimal = len(parts) == 2 and len(parts[1]) in (1, 2)
        raw = f"{parts[0]}.{parts[1]}" if decimal else "".join(parts)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        return None
    if k.strip():
        value *= 1000
    return value


def _words_number(words: str) -> Decimal | None:
    total = current = 0
    seen = False
    for word in re.split(r"[\s-]+", words.lower()):
        if word in ("", "and"):
            continue
        if word in ("a", "an"):
            current += 1
        elif word in _UNITS:
            current += _UNITS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word == "thousand":
            total += max(current, 1) * 1000
            current = 0
        else:
            return None
        seen = True
    return Decimal(total + current) if seen else None


def _currency(marker: str, default_dollar: str) -> str:
    upper = marker.upper()
    if marker in _SYMBOLS or upper in _SYMBOLS:
        return _SYMBOLS.get(marker) or _SYMBOLS[upper]
    if upper in _CODES:
        return upper
    word = _WORDS.get(marker.lower())
    if word is not None:
        marker = word
    return default_dollar if marker == "$" else marker


def dollar_currency(organization) -> str:
    currency = (getattr(organization, "currency", "") or "USD").upper()
    return currency if currency in DOLLAR_CURRENCIES else "USD"


def find_quotes(text: str, *, dollar: str = "USD") -> list[Quote]:
    """Every price quoted in `text` (see the module docstring for what counts), in order."""
    raw: list[tuple[int, int, Decimal, str]] = []
    for match in _AMOUNT_RE.finditer(text):
        groups = match.groupdict()
        if groups["sym"]:
            value, marker = _number(groups["n1"], groups["k1"]), groups["sym"]
        elif groups["code"]:
            value, marker = _number(groups["n2"], groups["k2"]), groups["code"]
        elif groups["n3"]:
            value = _number(groups["n3"], groups["k3"])
            marker = groups["code3"] or groups["word3"] or groups["sym3"] or groups["sym3b"]
        else:
            value, marker = _words_number(groups["words"]), groups["word4"]
        if value is None:
            continue
        raw.append((match.start(), match.end(), value, _currency(marker, dollar)))

    quotes: list[Quote] = []
    index = 0
    while index < len(raw):
        start, end, value, currency = raw[index]
        amounts, style = [value], "single"
        before, after = text[:start], text[end:]
        nxt = raw[index + 1] if index + 1 < len(raw) else None
        between_and = re.match(r"\s+and\s+", text[end : nxt[0]]) if nxt else None
        if (
            nxt is not None
            and _BETWEEN.search(before)
            and between_and
            and between_and.end() == nxt[0] - end
        ):
            start = _BETWEEN.search(before).start()
            amounts.append(nxt[2])
            end, style = nxt[1], "between"
            index += 1
        elif (ranged := _RANGE_AFTER.match(after)) is not None and (
            (second := _number(ranged.group("n"), ranged.group("k") or "")) is not None
            and second >= value
        ):
            amounts.append(second)
            end, style = end + ranged.end(), "dash"
            while index + 1 < len(raw) and raw[index + 1][0] < end:
                index += 1  # the range's second amount, already taken
        elif (prior := _RANGE_BEFORE.search(before)) is not None and (
            (first := _number(prior.group("n"), prior.group("k") or "")) is not None
            and first <= value
        ):
            amounts.insert(0, first)
            start, style = prior.start(), "dash"
        index += 1
        if _NOT_PRICE_BEFORE.search(text[:start]) or _NOT_PRICE_AFTER.match(text[end:]):
            continue
        quotes.append(Quote(text[start:end], start, end, tuple(amounts), currency, style))
    return quotes


# --- offers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfferPrice:
    """One offer's allowed range (from a PriceRule, or implied by an appointment type's price)."""

    name: str
    terms: tuple[str, ...]  # lower-case names and keywords that identify it in a text
    min_price: Decimal
    max_price: Decimal
    currency: str
    action: str  # "block" or "rewrite"
    appointment_type_id: object | None = None
    explicit: bool = True  # False: implied by an appointment type's price

    def allows(self, amount: Decimal, currency: str) -> bool:
        return currency == self.currency and self.min_price <= amount <= self.max_price

    def range_text(self, style: str = "dash") -> str:
        low = format_price(self.min_price, self.currency)
        if self.min_price == self.max_price:
            return low
        high = format_price(self.max_price, self.currency)
        return f"between {low} and {high}" if style == "between" else f"{low}-{high}"


def _terms(*values) -> tuple[str, ...]:
    found = []
    for value in values:
        term = " ".join(str(value or "").lower().replace("-", " ").replace("_", " ").split())
        if len(term) >= 3 and term not in found:
            found.append(term)
    return tuple(found)


def offer_prices(*, organization) -> list[OfferPrice]:
    """The organization's active price rules, plus appointment types with a price and no
    rule (priced exactly). Two queries."""
    from apps.bookings.models import AppointmentType
    from apps.revenue.models import PriceRule

    offers, covered = [], set()
    for rule in PriceRule.objects.filter(organization=organization, is_active=True).select_related(
        "appointment_type"
    ):
        kind = rule.appointment_type
        names = (kind.name, kind.slug) if kind else (rule.product,)
        offers.append(
            OfferPrice(
                name=rule.name,
                terms=_terms(rule.name, *names, *rule.keywords),
                min_price=rule.min_price,
                max_price=rule.max_price,
                currency=rule.currency,
                action=rule.action,
                appointment_type_id=rule.appointment_type_id,
            )
        )
        covered.add(rule.appointment_type_id)
    for kind in AppointmentType.objects.filter(
        organization=organization, is_active=True, price__isnull=False
    ).exclude(pk__in=[pk for pk in covered if pk]):
        offers.append(
            OfferPrice(
                name=kind.name,
                terms=_terms(kind.name, kind.slug),
                min_price=kind.price,
                max_price=kind.price,
                currency=kind.currency,
                action="rewrite",
                appointment_type_id=kind.pk,
                explicit=False,
            )
        )
    return offers


# --- attribution of a quote to an offer -----------------------------------------------------------

_SENTENCE_END = re.compile(r"[.!?]+(?:\s+|$)|\n+")
_CLAUSE_BREAK = re.compile(r"[,;:]|\s[\u2013\u2014-]\s|\b(?:and|but|or|while|whereas|plus)\b", re.I)
_CONJUNCTION = re.compile(r";|\b(?:and|but|or|while|whereas|plus)\b", re.IGNORECASE)


def _mentions(text: str, offers: list[OfferPrice]) -> list[tuple[int, int, OfferPrice]]:
    found = []
    lower = text.lower()
    for offer in offers:
        for term in offer.terms:
            pattern = r"\b" + r"[\s-]+".join(map(re.escape, term.split())) + r"(?:e?s)?\b"
            found += [(m.start(), m.end(), offer) for m in re.finditer(pattern, lower)]
    found.sort(key=lambda m: (m[0], -(m[1] - m[0])))
    kept: list[tuple[int, int, OfferPrice]] = []
    for mention in found:  # overlapping mentions: the longest wins
        if not kept or mention[0] >= kept[-1][1]:
            kept.append(mention)
    return kept


def _sentence_bounds(text: str, at: int) -> tuple[int, int]:
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if match.end() <= at:
            start = match.end()
        elif match.start() >= at:
            return start, match.start()
    return start, len(text)


def _clause_start(text: str, sentence_start: int, at: int) -> int:
    start = sentence_start
    for match in _CLAUSE_BREAK.finditer(text, sentence_start, at):
        start = match.end()
    return start


def _offer_for(text: str, quote: Quote, mentions, quotes: list[Quote]) -> OfferPrice | None:
    s_start, s_end = _sentence_bounds(text, quote.start)
    c_start = _clause_start(text, s_start, quote.start)
    c_end_match = _CLAUSE_BREAK.search(text, quote.end, s_end)
    c_end = c_end_match.start() if c_end_match else s_end
    in_clause = [m for m in mentions if c_start <= m[0] and m[1] <= c_end]
    if in_clause:
        return min(in_clause, key=lambda m: abs(m[0] - quote.start))[2]
    earlier = [m for m in mentions if s_start <= m[0] and m[1] <= quote.start]
    if earlier:
        mention = earlier[-1]
        gap = text[mention[1] : quote.start]
        other_quote = any(mention[1] <= q.start < quote.start for q in quotes if q is not quote)
        if not _CONJUNCTION.search(gap) and not other_quote:
            return mention[2]
    if c_start == s_start and s_start > 0:
        p_start, _ = _sentence_bounds(text, max(s_start - 1, 0))
        previous = [m for m in mentions if p_start <= m[0] and m[1] <= s_start]
        if previous:
            return previous[-1][2]
    return None


# --- the guard ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceViolation:
    quote: Quote
    offer: str | None  # the offer's name; None: no offer could be identified
    allowed: str  # "$100-$150", or the list of allowed ranges for an unknown offer
    reason: str
    action: str  # "rewrite" or "block"

    def as_dict(self) -> dict:
        return {
            "quoted": self.quote.text,
            "amounts": [str(a) for a in self.quote.amounts],
            "currency": self.quote.currency,
            "offer": self.offer,
            "allowed": self.allowed,
            "reason": self.reason,
            "action": self.action,
        }


@dataclass(frozen=True)
class PricingCheck:
    original: str
    text: str  # rewritten when a rewrite rule applied (unchanged when blocked)
    quotes: tuple[Quote, ...]
    violations: tuple[PriceViolation, ...] = field(default_factory=tuple)

    @property
    def blocked(self) -> bool:
        return any(v.action == "block" for v in self.violations)

    @property
    def rewritten(self) -> bool:
        return not self.blocked and self.text != self.original

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "blocked": self.blocked,
            "rewritten": self.rewritten,
            "text": self.text,
            "violations": [v.as_dict() for v in self.violations],
        }


def _describe(quote: Quote) -> str:
    amounts = " to ".join(f"{a:,.2f}" for a in quote.amounts)
    return f"{amounts} {quote.currency}"


def pricing_guard(
    *,
    organization,
    text: str,
    appointment_type=None,
    offers: list[OfferPrice] | None = None,
) -> PricingCheck:
    """Check the prices a proposed reply quotes against the organization's price rules.

    Returns the (possibly rewritten) text and every violation. Reads only: two queries to
    load the rules unless `offers` is given (`offer_prices`). `appointment_type` (an id or
    an AppointmentType) names the offer the conversation is about, for amounts that name
    none. Pure otherwise; idempotent (a rewritten text passes).
    """
    offers = offer_prices(organization=organization) if offers is None else offers
    quotes = find_quotes(text or "", dollar=dollar_currency(organization))
    if not quotes or not offers:
        return PricingCheck(text or "", text or "", tuple(quotes))
    context_id = getattr(appointment_type, "pk", appointment_type)
    context_offer = next(
        (o for o in offers if context_id and o.appointment_type_id == context_id), None
    )
    explicit = [o for o in offers if o.explicit]
    mentions = _mentions(text, offers)
    violations, replacements = [], []
    for quote in quotes:
        offer = _offer_for(text, quote, mentions, quotes) or context_offer
        if offer is not None:
            if all(offer.allows(a, quote.currency) for a in quote.amounts):
                continue
            reason = (
                f"quoted in {quote.currency}, but {offer.name} is priced in {offer.currency}"
                if quote.currency != offer.currency
                else f"{_describe(quote)} is outside {offer.name}'s range "
                f"({offer.min_price:,.2f}-{offer.max_price:,.2f} {offer.currency})"
            )
            violation = PriceViolation(quote, offer.name, offer.range_text(), reason, offer.action)
            if offer.action == "rewrite":
                replacements.append((quote, offer.range_text(quote.style)))
        else:
            if not explicit or any(
                all(o.allows(a, quote.currency) for a in quote.amounts) for o in explicit
            ):
                continue
            allowed = "; ".join(f"{o.name}: {o.range_text()}" for o in explicit)
            violation = PriceViolation(
                quote,
                None,
                allowed,
                f"{_describe(quote)} is about no known offer and outside every price rule",
                "block",
            )
        violations.append(violation)
    rewritten = text
    for quote, replacement in sorted(replacements, key=lambda r: r[0].start, reverse=True):
        rewritten = rewritten[: quote.start] + replacement + rewritten[quote.end :]
    return PricingCheck(text, rewritten, tuple(quotes), tuple(violations))


PRICING_RULE_KEY = "pricing-rules"


def _context_offer(ctx, actions: list[dict]):
    """The appointment type a reply is about when its text names none: one the proposal
    offers or books, else the contact's next booking's."""
    for action in actions:
        if action.get("type") in ("offer_slots", "book_appointment") and action.get(
            "appointment_type_id"
        ):
            return action["appointment_type_id"]
    upcoming = getattr(ctx, "upcoming_bookings", None) or []
    if upcoming:
        return getattr(upcoming[0].appointment_type, "pk", None)
    return getattr(ctx, "appointment_type", None)


def guard_pricing(ctx, actions: list[dict], report) -> None:
    """The pricing guard of the decision engine (in `apps.decisions.guard.GUARDS`): every
    proposed `send_message` is checked with `pricing_guard`. A rewrite replaces its body
    (outcome `rewritten`); a block replaces the action with `no_action` (outcome `blocked`)
    and asks for a person (an escalation is added, as for other blocked replies).

    `ctx` needs `organization` (the offer in context comes from the proposal or the
    contact's next booking); `report` needs `checked(key)` and `record(...)`. Two queries
    (the price rules), only when a reply quotes something.
    """
    report.checked(PRICING_RULE_KEY)
    offers = None
    context_offer = _context_offer(ctx, actions)
    for index, action in enumerate(list(actions)):
        if action.get("type") != "send_message" or not action.get("body"):
            continue
        if not find_quotes(action["body"], dollar=dollar_currency(ctx.organization)):
            continue
        if offers is None:
            offers = offer_prices(organization=ctx.organization)
        check = pricing_guard(
            organization=ctx.organization,
            text=action["body"],
            appointment_type=context_offer,
            offers=offers,
        )
        if check.ok:
            continue
        why = "; ".join(v.reason for v in check.violations)
        if check.blocked:
            actions[index] = {"type": "no_action", "reason": f"Send blocked: {why}"}
            report.record(PRICING_RULE_KEY, index, action, "blocked", why)
            escalations = getattr(report, "escalate_reasons", None)
            if escalations is not None:
                escalations.append("A proposed reply quoted a price outside the price rules.")
        else:
            actions[index] = {**action, "body": check.text}
            report.record(PRICING_RULE_KEY, index, action, "rewritten", why)
