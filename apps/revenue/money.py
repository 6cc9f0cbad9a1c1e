"""Money helpers: Decimal amounts with a currency, rounded half-up to cents, never floats."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from apps.core.errors import ValidationFailed

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("9999999999.99")  # DecimalField(max_digits=12, decimal_places=2)
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}
DOLLAR_CURRENCIES = frozenset({"USD", "CAD", "AUD", "NZD", "SGD", "HKD", "MXN"})


def invalid(field: str, message: str, code: str = "validation_error") -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", code=code, details={field: [message]})


def cents(value: Decimal) -> Decimal:
    """Round to cents, half up (the rule invoices use)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def parse_amount(value, field: str, *, allow_zero: bool = True) -> Decimal:
    """A non-negative money amount from a string, an int, a Decimal or a JSON number (read
    through its shortest decimal form, so 149.99 is exactly 149.99). More than two decimal
    places is refused, not rounded. Raises ValidationFailed naming `field`."""
    if isinstance(value, bool) or value is None:
        raise invalid(field, 'Give an amount, e.g. "149.00".')
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise invalid(field, "Not a number.") from None
    if not amount.is_finite():
        raise invalid(field, "Not a number.")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise invalid(
            field, "Must be more than zero." if not allow_zero else "Must not be negative."
        )
    if amount != amount.quantize(CENT, rounding=ROUND_HALF_UP):
        raise invalid(field, "At most two decimal places.")
    if amount > MAX_AMOUNT:
        raise invalid(field, "Too large.")
    return cents(amount)


def parse_currency(value, field: str = "currency", *, default: str | None = None) -> str:
    currency = (str(value) if value else default or "").strip().upper()
    if not _CURRENCY_RE.match(currency):
        raise invalid(field, "Use a 3-letter ISO 4217 code, e.g. USD.")
    return currency


def format_money(amount: Decimal, currency: str) -> str:
    """`$1,200.00`, `€99.00`, `1,200.00 CHF` (whole amounts keep no cents in prose: see
    `format_price`)."""
    symbol = SYMBOLS.get(currency) or ("$" if currency in DOLLAR_CURRENCIES else None)
    text = f"{amount:,.2f}"
    return f"{symbol}{text}" if symbol else f"{text} {currency}"


def format_price(amount: Decimal, currency: str) -> str:
    """A price as a person writes it in a message: `$150`, `$99.50`."""
    symbol = SYMBOLS.get(currency) or ("$" if currency in DOLLAR_CURRENCIES else None)
    text = f"{amount:,.0f}" if amount == amount.to_integral_value() else f"{amount:,.2f}"
    return f"{symbol}{text}" if symbol else f"{text} {currency}"
